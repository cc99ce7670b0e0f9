from __future__ import annotations

from django import forms


class PasswordForm(forms.Form):
    username = forms.CharField(max_length=150, strip=True)
    password = forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput)


class CodeForm(forms.Form):
    code = forms.CharField(max_length=12, strip=True)


class ReauthForm(forms.Form):
    password = forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput)
    code = forms.CharField(max_length=12, strip=True)
