"""The learner's first start, killed (SIGKILL) while it makes its signing key, starts again with a whole key pair.

It did not: the private key file was created empty and then written, so a kill in between left an empty key (every
later start failed to load it) and no public key (the deploy files pointed at nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.learner.setup import signing_key
from edge.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, load_private_key, public_pem_of

REPO = Path(__file__).resolve().parents[3]
# the child kills itself inside generate_keypair, at the call named on its command line
CHILD = """
import os, signal, sys, tempfile
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
made = []
def second_dies(*args, **kwargs):  # the public key's temp file first, then the private key's
    made.append(1)
    return die() if len(made) == 2 else real_mkstemp(*args, **kwargs)
real_mkstemp = tempfile.mkstemp
if sys.argv[2] == "between the two files":
    tempfile.mkstemp = second_dies
else:
    os.link = die
from edge.learner.setup import signing_key
signing_key(sys.argv[1])
"""


def _whole_pair(keys: Path) -> bool:
    key = load_private_key(keys / PRIVATE_KEY_FILE)
    return (keys / PUBLIC_KEY_FILE).read_bytes() == public_pem_of(key)


@pytest.mark.parametrize("where", ["between the two files", "before the link"])
def test_a_start_killed_while_making_the_key_leaves_a_pair_the_next_start_uses(tmp_path, where):
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), where], cwd=REPO)
    assert child.returncode == -signal.SIGKILL
    keys = tmp_path / "keys"
    assert not (keys / PRIVATE_KEY_FILE).exists()  # no half key: the next start makes a pair
    assert (keys / PUBLIC_KEY_FILE).exists()  # the kill came after the public half
    signing_key(tmp_path, public_key_dir=tmp_path / "deploy")
    assert _whole_pair(keys) and (tmp_path / "deploy" / PUBLIC_KEY_FILE).read_bytes() == \
        (keys / PUBLIC_KEY_FILE).read_bytes()
    assert sorted(p.name for p in keys.iterdir()) == [PRIVATE_KEY_FILE, PUBLIC_KEY_FILE]  # no temp file left


def test_what_an_older_start_left_is_mended(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / PRIVATE_KEY_FILE).write_bytes(b"")  # killed after the create, before the write
    signing_key(tmp_path)
    assert _whole_pair(keys)
    original = (keys / PRIVATE_KEY_FILE).read_bytes()
    (keys / PUBLIC_KEY_FILE).unlink()  # killed between the two files
    signing_key(tmp_path)
    assert _whole_pair(keys) and (keys / PRIVATE_KEY_FILE).read_bytes() == original  # the key is kept
    assert os.stat(keys / PRIVATE_KEY_FILE).st_mode & 0o077 == 0
