"""The patient portal: secure message threads and Web Push subscriptions."""
