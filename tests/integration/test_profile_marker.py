"""The fencing token in the profile directory: a later lease's mark refuses an earlier one; and
the WebRTC policy the SDK pins in the profile's preferences before each launch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import held_lease

from ledger import Lease
from workers import LaunchRefused, _launch as launch, _profile_dir as profile_dir


def lease(token: int, profile_id: str = "p1") -> Lease:
    return held_lease(token, profile_id, worker_id=f"w{token}", run_id=f"r{token}")


def test_a_claim_writes_the_lease_and_a_higher_token_replaces_it(tmp_path: Path) -> None:
    """A new directory is made and marked; the same token may claim again (a relaunch); a
    higher token replaces the mark."""
    directory = tmp_path / "profiles" / "p1"
    profile_dir.claim(directory, lease(2))
    assert profile_dir.read(directory) is not None
    profile_dir.claim(directory, lease(2))
    profile_dir.claim(directory, lease(3))
    marker = profile_dir.read(directory)
    assert marker is not None
    assert (marker["fencing_token"], marker["worker_id"], marker["run_id"]) == (3, "w3", "r3")


def test_a_lower_token_is_refused_and_the_mark_kept(tmp_path: Path) -> None:
    """A launch holding a lower token than the mark is refused (``LaunchRefused``: the lease is
    not lost), naming the marker file, both tokens and how to clear it."""
    profile_dir.claim(tmp_path, lease(7))
    with pytest.raises(LaunchRefused) as refused:
        profile_dir.claim(tmp_path, lease(6))
    said = str(refused.value)
    assert said.startswith(f"{tmp_path / profile_dir.MARKER} holds fencing token 7, higher")
    assert "lease-6@p1's 6" in said
    assert said.endswith(f"remove {tmp_path / profile_dir.MARKER}: the next launch writes its own")
    marker = profile_dir.read(tmp_path)
    assert marker is not None
    assert marker["fencing_token"] == 7


def test_the_same_token_for_another_run_is_refused_and_the_mark_kept(tmp_path: Path) -> None:
    """A mark of the lease's own token written for another worker or run: the store granted
    the token twice (created anew, or a backup moved over it), so the launch is refused naming
    both runs and how to clear it (rev33: read as a relaunch, the second lease's launch
    overwrote a live browser's mark). A relaunch of the same run, and a mark of an earlier
    custody naming no run, are taken."""
    first = held_lease(1, "p1", worker_id="w1", run_id="r_first")
    profile_dir.claim(tmp_path, first)
    profile_dir.claim(tmp_path, first)  # a relaunch under the same lease
    before = (tmp_path / profile_dir.MARKER).read_text()
    for worker, run in (("w1", "r_second"), ("w2", "r_first")):
        second = held_lease(1, "p1", worker_id=worker, run_id=run)
        with pytest.raises(LaunchRefused) as refused:
            profile_dir.claim(tmp_path, second)
        said = str(refused.value)
        assert said.startswith(f"{tmp_path / profile_dir.MARKER} holds fencing token 1 for run")
        assert "run r_first of worker w1, not for lease lease-1@p1's" in said
        assert "granted this token twice" in said
        assert (tmp_path / profile_dir.MARKER).read_text() == before
    (tmp_path / profile_dir.MARKER).write_text('{"fencing_token": 1, "profile_id": "p1"}')
    profile_dir.claim(tmp_path, held_lease(1, "p1", worker_id="w9", run_id="r9"))


@pytest.mark.parametrize("content", ['{"fencing_token": "9"}', "not json", '{"other": 1}'])
def test_a_damaged_mark_refuses_every_launch(tmp_path: Path, content: str) -> None:
    """A mark that cannot be read is not guessed at: no token may launch over it."""
    (tmp_path / profile_dir.MARKER).write_text(content)
    with pytest.raises(LaunchRefused, match="cannot be read"):
        profile_dir.claim(tmp_path, lease(10**6))


@pytest.mark.parametrize("token", [3, 7, 9])
def test_a_marker_of_another_profile_refuses_the_launch_naming_it(
    tmp_path: Path, token: int
) -> None:
    """Tokens are compared within one profile only: p2's lease with a lower, equal or higher
    token than p1's marker is neither lost nor allowed; the launch is refused naming p1, and
    p1's marker is kept."""
    profile_dir.claim(tmp_path, lease(7))
    with pytest.raises(LaunchRefused, match="marker of profile p1") as refused:
        profile_dir.claim(tmp_path, lease(token, "p2"))
    assert "not p2's" in str(refused.value)
    marker = profile_dir.read(tmp_path)
    assert marker is not None
    assert (marker["profile_id"], marker["fencing_token"]) == ("p1", 7)


def test_a_marker_that_names_no_profile_refuses_every_launch(tmp_path: Path) -> None:
    """A marker without the profile that wrote it cannot be judged: no token may launch."""
    (tmp_path / profile_dir.MARKER).write_text('{"fencing_token": 1}')
    with pytest.raises(LaunchRefused, match="cannot be read"):
        profile_dir.claim(tmp_path, lease(10))


def test_the_webrtc_policy_is_pinned_and_every_other_preference_kept(tmp_path: Path) -> None:
    """A new profile gets ``Default/Preferences`` holding the policy; an existing one keeps its
    other preferences, and a policy changed meanwhile is set back; a preferences file that is
    not a JSON object refuses the launch rather than being replaced."""
    launch.pin_webrtc_policy(tmp_path / "new")
    made = json.loads((tmp_path / "new" / launch.PREFERENCES).read_text())
    assert made == {"webrtc": {"ip_handling_policy": "disable_non_proxied_udp"}}
    prefs = tmp_path / "old" / launch.PREFERENCES
    prefs.parent.mkdir(parents=True)
    kept = {"intl": {"accept_languages": "de"}, "webrtc": {"ip_handling_policy": "default"}}
    prefs.write_text(json.dumps(kept))
    launch.pin_webrtc_policy(tmp_path / "old")
    assert json.loads(prefs.read_text()) == {
        "intl": {"accept_languages": "de"},
        "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"},
    }
    prefs.write_text("{not json")
    with pytest.raises(LaunchRefused, match="to pin WebRTC to the proxy"):
        launch.pin_webrtc_policy(tmp_path / "old")
    assert prefs.read_text() == "{not json"


def test_the_webrtc_pin_keeps_the_preferences_file_s_mode_and_its_symlink(tmp_path: Path) -> None:
    """Found by a review (rev17): the pin wrote Chromium's 0600 preferences back at the
    umask's 0644, readable by every user of the host, and replaced a symlinked file with a
    regular one. A new file is 0600; an existing one keeps its mode; a symlink is written
    through, and stays a symlink."""
    launch.pin_webrtc_policy(tmp_path / "new")
    assert (tmp_path / "new" / launch.PREFERENCES).stat().st_mode & 0o777 == 0o600
    prefs = tmp_path / "old" / launch.PREFERENCES
    prefs.parent.mkdir(parents=True)
    prefs.write_text("{}")
    prefs.chmod(0o600)
    launch.pin_webrtc_policy(tmp_path / "old")
    assert prefs.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    linked = tmp_path / "linked" / launch.PREFERENCES
    linked.parent.mkdir(parents=True)
    linked.symlink_to(target)
    launch.pin_webrtc_policy(tmp_path / "linked")
    assert linked.is_symlink()
    assert json.loads(target.read_text())["webrtc"]["ip_handling_policy"] == launch.WEBRTC_POLICY
