"""People from Microsoft Entra: the user members of a group, for directory sync.

Needs the Graph application permission GroupMember.Read.All (User.Read.All adds nothing here:
the member listing carries the fields we ask for).
"""

from __future__ import annotations

from urllib.parse import quote

from bot.providers.graph import GraphClient
from handlers.grants.provider import Person

FIELDS = "id,displayName,mail,userPrincipalName"


async def entra_group_people(*, graph: GraphClient, group_id: str) -> list[Person]:
    """The users directly in the group, each with their Entra object id as `teams_id`.

    Email is `mail`, else the userPrincipalName (accounts without a mailbox have only that);
    the name is displayName, else the email. Nested groups, devices and service principals
    are not people and are left out by asking for `microsoft.graph.user` members only.
    """
    path = f"/v1.0/groups/{quote(group_id, safe='')}/members/microsoft.graph.user"
    people: list[Person] = []
    async for user in graph.items(path, params={"$select": FIELDS, "$top": "999"}):
        email = (user.get("mail") or user.get("userPrincipalName") or "").strip()
        if not email or not user.get("id"):
            continue
        people.append(
            Person(
                email=email.lower(),
                name=(user.get("displayName") or email),
                teams_id=str(user["id"]),
            )
        )
    return people
