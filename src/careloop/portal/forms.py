"""The portal's sign-in and registration forms (labels are in the templates)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _


class SignInForm(forms.Form):
    contact = forms.CharField(max_length=254, strip=True)
    password = forms.CharField(max_length=4096, strip=False)


class CodeForm(forms.Form):
    code = forms.CharField(max_length=12, strip=True)


class LinkRequestForm(forms.Form):
    email = forms.EmailField(max_length=254)


class RegisterForm(forms.Form):
    given_name = forms.CharField(max_length=100, strip=True)
    family_name = forms.CharField(max_length=100, strip=True)
    birth_date = forms.DateField()
    contact = forms.CharField(max_length=254, strip=True)


class RegisterVerifyForm(forms.Form):
    code = forms.CharField(max_length=12, strip=True)
    password = forms.CharField(max_length=4096, strip=False)
    password_again = forms.CharField(max_length=4096, strip=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        password = data.get("password")
        if isinstance(password, str):
            if password != data.get("password_again"):
                raise forms.ValidationError(_("The two passwords do not match."))
            validate_password(password)
        return data
