from __future__ import annotations

import datetime as dt

import pytest
from cryptography.exceptions import InvalidTag
from helpers import valid_id_number
from hypothesis import given
from hypothesis import strategies as st

from gongji.core.errors import InvalidInput
from gongji.core.identity import (
    IdentityVault,
    birth_date,
    check_char,
    mask_id_number,
    mask_name,
    normalise_id_number,
    redact_personal_digits,
    province_codes,
    sex,
)

TODAY = dt.date(2025, 6, 1)

regions = st.sampled_from(sorted(province_codes())).flatmap(
    lambda province: st.integers(min_value=0, max_value=9999).map(lambda rest: f"{province}{rest:04d}")
)
births = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)
seqs = st.integers(min_value=0, max_value=999)


@given(regions, births, seqs)
def test_valid_numbers_pass_and_round_trip(region, birth, seq):
    number = valid_id_number(region, birth, seq)
    assert normalise_id_number(number.lower(), today=TODAY) == number
    assert birth_date(number) == birth
    assert sex(number) == ("M" if seq % 2 else "F")


@given(regions, births, seqs, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_is_caught(region, birth, seq, position, delta):
    number = valid_id_number(region, birth, seq)
    changed_digit = str((int(number[position]) + delta) % 10)
    tampered = number[:position] + changed_digit + number[position + 1 : 17] + number[17]
    with pytest.raises(InvalidInput) as caught:
        normalise_id_number(tampered, today=TODAY)
    assert caught.value.field == "id_number"


def test_known_check_digit():
    # The GB 11643 worked example.
    assert check_char("11010519491231002") == "X"
    assert normalise_id_number("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (valid_id_number("110105", dt.date(1990, 1, 1), 1)[:17], "17 digits"),
        ("1101051990010100AX", "17 digits"),
        ("00" + valid_id_number("110105", dt.date(1990, 1, 1), 1)[2:], "province"),
        ("99" + valid_id_number("110105", dt.date(1990, 1, 1), 1)[2:], "province"),
    ],
)
def test_malformed_numbers(number, message):
    with pytest.raises(InvalidInput, match=message):
        normalise_id_number(number)


@pytest.mark.parametrize("birth", ["19900230", "19901301", "18991231", "20300101"])
def test_bad_birth_dates(birth):
    first17 = f"110105{birth}001"
    with pytest.raises(InvalidInput, match="birth date") as caught:
        normalise_id_number(first17 + check_char(first17), today=TODAY)
    assert birth not in str(caught.value) and birth[:4] not in str(caught.value)


def test_no_message_repeats_digits_of_the_number():
    number = valid_id_number("110105", dt.date(1990, 1, 1), 1)
    for bad in ("99" + number[2:], number[:17] + ("0" if number[17] != "0" else "1"), "1101051990023000" + "1X"):
        with pytest.raises(InvalidInput) as caught:
            normalise_id_number(bad)
        assert not any(run in str(caught.value) for run in (bad[:6], bad[6:14], bad[14:], bad[:2] + "'"))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("not a yuan amount: '110105199001010011'", "not a yuan amount: '******************'"),
        ("phone 13800138000 given", "phone *********** given"),
        ("amount 12345678.90 is fine", "amount 12345678.90 is fine"),
        ("１１０１０５１９９００１０１００１Ｘ", "*" * 18),
    ],
)
def test_redact_personal_digits(text, shown):
    assert redact_personal_digits(text) == shown


def test_wrong_check_digit():
    number = valid_id_number("110105", dt.date(1990, 1, 1), 1)
    wrong = "0" if number[17] != "0" else "1"
    with pytest.raises(InvalidInput, match="check digit"):
        normalise_id_number(number[:17] + wrong)


def test_masking():
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert mask_name("张明") == "张*"
    assert mask_name("张小明") == "张*明"
    assert mask_name("欧阳小明") == "欧**明"
    assert mask_name("明") == "*"


def test_encrypt_round_trip_is_randomised_and_bound_to_context():
    vault = IdentityVault(bytes(32), b"0123456789abcdef")
    first = vault.encrypt("张小明", "persons.name_enc")
    second = vault.encrypt("张小明", "persons.name_enc")
    assert first != second
    assert vault.decrypt(first, "persons.name_enc") == "张小明"
    with pytest.raises(InvalidTag):
        vault.decrypt(first, "persons.id_number_enc")
    with pytest.raises(InvalidTag):
        IdentityVault(bytes([1]) * 32, b"0123456789abcdef").decrypt(first, "persons.name_enc")


def test_person_key_deterministic_and_key_dependent():
    number = valid_id_number("330106", dt.date(1980, 5, 17), 123)
    vault = IdentityVault(bytes(32), b"0123456789abcdef")
    key = vault.person_key(number)
    assert key == vault.person_key(number)
    assert len(key) == 64 and int(key, 16) >= 0
    assert number not in key
    assert IdentityVault(bytes(32), b"fedcba9876543210").person_key(number) != key
    assert vault.person_key(valid_id_number("330106", dt.date(1980, 5, 17), 125)) != key


def test_vault_rejects_short_keys():
    with pytest.raises(ValueError):
        IdentityVault(bytes(16), b"0123456789abcdef")
    with pytest.raises(ValueError):
        IdentityVault(bytes(32), b"short")
