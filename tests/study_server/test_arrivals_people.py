"""Issue 29: arrivals that are people, and places per address.

- an MTurk preview flood does not use up the arrival limit of real arrivals;
- a re-open by the same person (their lab token or platform id, or a plain link in the same browser: the
  arrival cookie) is the same arrival: not counted again, and the same assignment;
- limits are per study; an IPv6 /64 is one address;
- at most PLACES_PER_ADDRESS places are held at once by one address in one study; a lab that lists its
  network in LAB_NETWORKS gets LAB_PLACES_PER_ADDRESS and LAB_ARRIVAL_RATE_PER_IP (a lab of 20 behind one
  address, each opening the link twice, then all opening the second study).
"""

from __future__ import annotations

import pytest

from studykit import TASK1, TASK2, import_study, make_plan


@pytest.fixture
def app_config():
    return {"RATE_LIMIT_ENABLED": True, "ARRIVAL_RATE_PER_IP": "10/300", "ARRIVAL_RATE_PER_STUDY": "1000/60",
            "RATE_LIMIT_PER_IP": "100000/60", "RATE_LIMIT_PER_ASSIGNMENT": "100000/60",
            "PLACES_PER_ADDRESS": 5, "LAB_PLACES_PER_ADDRESS": 100, "LAB_ARRIVAL_RATE_PER_IP": "600/300"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def anyapp(request, app_config):
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    app.config.update(app_config)
    return app


@pytest.fixture
def studies(app, media_set, tmp_path):
    one = import_study(app, make_plan(media_set, TASK1, out=tmp_path / "a.json", name="ppl1", quota=20),
                       media_set)
    two = import_study(app, make_plan(media_set, TASK2, out=tmp_path / "b.json", name="ppl2", quota=20,
                                      audio_check=False), media_set)
    return one, two


def _arrive(client, study, addr, **query):
    return client.post(f"/api/v1/studies/{study}/arrive", json={"query": query},
                       environ_base={"REMOTE_ADDR": addr})


def test_previews_do_not_count(app, studies):
    client = app.test_client()
    for i in range(200):
        r = client.get(f"/s/{studies[0]}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H{i}",
                       environ_base={"REMOTE_ADDR": "198.51.100.7"})
        assert r.status_code == 200
    codes = [_arrive(client, studies[0], "198.51.100.7", workerId=f"W{i}", assignmentId=f"A{i}", hitId="H1",
                     turkSubmitTo="https://www.mturk.com").status_code for i in range(5)]
    assert codes == [201] * 5


def test_a_reopen_is_the_same_arrival(app, studies):
    client = app.test_client()
    first = [_arrive(client, studies[0], "198.51.100.8", lab=f"lab-{i}") for i in range(4)]
    again = [_arrive(client, studies[0], "198.51.100.8", lab=f"lab-{i}") for i in range(4) for _ in range(5)]
    assert [r.status_code for r in first] == [201] * 4, [r.get_json() for r in first]
    assert {r.status_code for r in again} == {200}, [r.get_json() for r in again if r.status_code != 200][:2]
    # a plain link re-opened in the same browser: the same assignment, not a second place
    browser = app.test_client()
    a = browser.get(f"/s/{studies[0]}", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    b = browser.get(f"/s/{studies[0]}", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert a.status_code == b.status_code == 302 and a.headers["Location"] == b.headers["Location"]
    other = app.test_client().get(f"/s/{studies[0]}", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert other.headers["Location"] != a.headers["Location"]  # another browser is another person


def test_limits_are_per_study_and_an_ipv6_64_is_one_address(app, studies):
    client = app.test_client()
    # ten arrivals from ten addresses of one /64: the eleventh is limited like one address
    codes = [_arrive(client, studies[0], f"2001:db8:1:2::{i + 1:x}", lab=f"v6-{i}").status_code for i in range(11)]
    assert codes[:5] == [201] * 5
    assert set(codes[5:10]) == {429} and codes[10] == 429  # PLACES_PER_ADDRESS=5 then the arrival rate
    r = _arrive(client, studies[0], "2001:db8:1:3::1", lab="v6-other")  # another /64
    assert r.status_code == 201
    # the same /64 at the other study: its own limits
    assert _arrive(client, studies[1], "2001:db8:1:2::99", lab="v6-0").status_code == 201


def test_places_per_address_are_capped(anyapp, media_set, tmp_path):
    app = anyapp
    studies = [import_study(app, make_plan(media_set, TASK1, out=tmp_path / "c.json", name="cap1", quota=20),
                            media_set)]
    client = app.test_client()
    codes = [_arrive(client, studies[0], "203.0.113.5", lab=f"cap-{i}") for i in range(7)]
    assert [r.status_code for r in codes] == [201] * 5 + [429] * 2
    assert codes[5].get_json()["error"]["code"] == "address_full"
    # one of them gives the place back: the next person from there gets one
    assert client.post(f"/api/v1/a/{codes[0].get_json()['token']}/return").status_code == 200
    assert _arrive(client, studies[0], "203.0.113.5", lab="cap-5").status_code == 201


def test_a_lab_of_twenty_behind_one_address(app, studies):
    client = app.test_client()
    refused = [_arrive(client, studies[0], "192.0.2.10", lab=f"room-{i}").status_code for i in range(20)]
    assert refused.count(201) == 5  # without the lab setting: the per-address cap
    app.config["LAB_NETWORKS"] = "192.0.2.0/24"
    for study in studies:
        for _ in range(2):  # everyone opens the link twice
            codes = [_arrive(client, study, "192.0.2.10", lab=f"room-{i}").status_code for i in range(20)]
            assert set(codes) <= {200, 201}, codes
