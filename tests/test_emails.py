"""Emails: syntax checked without DNS, by a shortcut that agrees with email_validator."""

from __future__ import annotations

import pytest

from .conftest import PHONES, _run_rows


def test_bad_email_is_invalid_and_good_email_is_sent(sandbox, write_config, write_csv, invoke,
                                                     tmp_path):
    """Email syntax is checked without DNS."""
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path,
                           [["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], "ana@"],
                            ["Luis", PHONES[1], "luis@example.com"]])
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("invalid", "email_invalid"), ("sent", "")]
    assert sandbox.state.ticket_bodies()[0]["email"] == "luis@example.com"


# The addresses of email-validator's own syntax tests (tests/test_syntax.py, including the
# pyIsEmail cases it carries) that are plain ASCII: the forms the shortcut could touch.
EMAIL_VALIDATOR_SUITE = [
    "Abc@example.tld", "Abc.123@test-example.com", "user+mailbox/department=shipping@example.tld",
    "!#$%&'*+-/=?^_`.{|}~@example.tld", "my@localhost", "my@.leadingdot.com",
    "my@twodots..com", "my@trailingdot.com.", "me@-leadingdash", "me@trailingdash-",
    "my@baddash.-.com", "my@baddash.-a.com", "my@baddash.b-.com", "my@example.com\n",
    "my@example\n.com", "me@x!", "me@x ", ".leadingdot@domain.com", "twodots..here@domain.com",
    "trailingdot.@domain.email", "@example.com", "white space@test", "test@white space",
    "\nmy@example.com", "m\ny@example.com", "my\n@example.com", 'bad"quotes"@example.com',
    'obsolete."quoted".atom@example.com', "1" * 65 + "@example.com", "1" * 66 + "@example.com",
    "me@" + ".".join(["1" * 49] * 5) + ".com",
    "my.long.address@" + ".".join(["1" * 60] * 4) + ".info",
    "me@bad-tld-1", "me@bad.tld-2", "me@xn--0.tld", "me@yy--0.tld", "me@[127.0.0.1]",
    "me@[IPv6:::1]", "me@anything.arpa", "me@valid.invalid", "me@link.local",
    "me@host.localhost", "me@onion.onion.onion", "me@test.test.test", "anything@test",
    "anything@mycompany.test", "test", "@", "test@", "@io", "@iana.org", "test@iana.org",
    "test@nominet.org.uk", "test@about.museum", "a@iana.org", "test.test@iana.org",
    ".test@iana.org", "test.@iana.org", "test..iana.org", "test_exa-mple.com",
    "!#$%&`*+/=?^`{|}~@iana.org", "test\\@test@iana.org", "123@iana.org", "test@123.com",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm@iana.org",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklmn@iana.org",
    "test@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm.com",
    "test@mason-dixon.com", "test@-iana.org", "test@iana-.com", "test@g--a.com",
    "test@.iana.org", "test@iana.org.", "test@iana..com",
    "a@" + ".".join(["abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"] * 3)
    + ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hij",
    "a@" + ".".join(["abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"] * 3)
    + ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hijk",
    '"test"@iana.org', "test@[255.255.255.255]", " test @iana.org", "test@ iana .com",
    "test . test@iana.org", "(comment)test@iana.org", "test@(comment)iana.org",
    "test@iana.org\n", "test@xn--hxajbheg2az3al.xn--jxalpdlp", "xn--test@iana.org",
    "test@iana.org-", "test@iana/icann.org", " test@iana.org", "test@iana.org ",
    "test@iana.org\r", "\x7f@iana.org", "test@\x7f.org",
]


@pytest.mark.parametrize("address", EMAIL_VALIDATOR_SUITE + [
    "a@b.co", "user+tag@mail.example.org", "A_B-c@Example.COM", "1@2.io", "a..b@example.com",
    ".a@example.com", "a.@example.com", "a@example.123", "a@-ex.com", "a@ex-.com",
    "a@ab--cd.com", "a@xn--ls8h.la", "a@example.com.", "a@localhost", "a@x.test",
    "a@sub.example.local", "josé@example.com", "a@exämple.com", "\"a b\"@example.com",
    "a" * 65 + "@example.com", "a@" + "b" * 64 + ".com", "a@b@example.com", "a b@example.com",
])
def test_email_fast_path_agrees_with_email_validator(address):
    """The plain-ASCII shortcut accepts exactly what email_validator accepts."""
    from email_validator import EmailNotValidError, validate_email

    from importer.validate import email_problem

    try:
        validate_email(address, check_deliverability=False)
        accepted = True
    except EmailNotValidError:
        accepted = False
    assert (email_problem(address) is None) == accepted
