"""Small things many tests need: local ID tokens, a functions-framework app, chunk documents."""

from __future__ import annotations

from typing import Any

from dev import local_token as tokens

PROJECT = "demo-story-test"


def local_token(uid: str = "alice", project: str = PROJECT, **claims: Any) -> str:
    """An ID token in the Firebase Auth emulator's format (unsigned, ``alg: none``)."""
    return tokens.local_token(uid, project, **claims)


def auth(uid: str = "alice", **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {local_token(uid)}", "Origin": "http://localhost:3000", **headers}


def story_docs(db: Any, uid: str, campaign_id: str) -> list[Any]:
    """Every chunk document of a campaign, straight from Firestore."""
    return list(db.collection("users").document(uid).collection("campaigns").document(campaign_id)
                .collection("story").stream())


def all_docs(db: Any) -> list[str]:
    """Paths of every document under users/ (collection groups), to prove nothing was written."""
    paths = [d.reference.path for d in db.collection_group("story").stream()]
    paths += [d.reference.path for d in db.collection_group("campaigns").stream()]
    return paths
