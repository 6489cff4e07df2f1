import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_flow(api, spark):
    r = api.post("/api/conversations/", {"title": "t"}, format="json")
    assert r.status_code == 201, r.content
    cid = r.json()["id"]
    r = api.post(f"/api/conversations/{cid}/messages/", {"content": "hello there"}, format="json")
    print(r.status_code, r.json())
    assert r.status_code == 201
    r = api.post(f"/api/conversations/{cid}/messages/", {"content": "again", "stream": True}, format="json")
    body = b"".join(r.streaming_content).decode()
    print(body)
    r = api.get(f"/api/conversations/{cid}/messages/")
    print(r.json())
    print(spark.requests[-1]["json"])
    r = api.post(f"/api/conversations/{cid}/messages/", {"content": "x [[midstream:10014]]", "stream": True}, format="json")
    print(b"".join(r.streaming_content).decode())
    r = api.post(f"/api/conversations/{cid}/messages/", {"content": "x [[upstream:11200]]"}, format="json")
    print(r.status_code, r.json())
