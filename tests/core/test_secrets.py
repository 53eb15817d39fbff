import logging
import pickle

import pytest

from stixbridge.secrets import MASK, Secret, is_secret_name, mask_mapping

SENTINEL = "sentinel-7f3a9c-do-not-log"


def test_secret_never_shows_itself(caplog):
    secret = Secret(SENTINEL, env="X_TOKEN")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("token is %s, repr %r, format %s", secret, secret, f"{secret}")
    assert SENTINEL not in caplog.text
    assert SENTINEL not in repr(secret)
    assert secret.reveal() == SENTINEL


def test_secret_cannot_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(Secret(SENTINEL))


@pytest.mark.parametrize("name", ["password", "api_key", "apikey", "token", "key", "bearer_token", "Authorization"])
def test_secret_names_detected(name):
    assert is_secret_name(name)


def test_mask_mapping_nested():
    masked = mask_mapping({"url": "http://127.0.0.1", "auth": {"password": SENTINEL}, "items": [{"api_key": "x"}]})
    assert masked == {"url": "http://127.0.0.1", "auth": MASK, "items": [{"api_key": MASK}]}
