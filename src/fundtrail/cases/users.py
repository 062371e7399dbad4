"""Users of the agency and the agency itself (the requesting authority on letters).

The first user of an empty database must be an admin and is added without an acting user (bootstrap);
after that only admins add users. Passwords and tokens belong to the API layer.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from fundtrail.cases.context import Context
from fundtrail.cases.models import Agency, User
from fundtrail.domain.cases import Action, Role, normalise_jurisdiction
from fundtrail.errors import ConflictError, InputError, PermissionDeniedError

_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


def user_doc(user: User) -> dict[str, Any]:
    """A user as JSON values."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "unit": user.unit,
        "jurisdiction": user.jurisdiction,
        "email": user.email,
        "active": user.active,
        "created_at": user.created_at,
    }


def parse_role(text: str) -> Role:
    """A role by name; InputError listing the roles otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise InputError(f"unknown role {text!r}; roles: {', '.join(r.value for r in Role)}") from None


def add_user(
    ctx: Context,
    username: str,
    display_name: str,
    role: str,
    unit: str,
    jurisdiction: str,
    email: str | None = None,
) -> User:
    """Add a user (admin only; the first user of an empty database must be an admin)."""
    role_ = parse_role(role)
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InputError(f"username {username!r} must be 2-64 characters: a-z first, then a-z 0-9 . _ -")
    if not display_name.strip():
        raise InputError("display name is empty")
    if not unit.strip():
        raise InputError("unit is empty")
    jurisdiction = normalise_jurisdiction(jurisdiction)
    users = ctx.session.execute(select(func.count()).select_from(User)).scalar_one()
    if users == 0 and ctx.user is None:
        if role_ is not Role.ADMIN:
            raise PermissionDeniedError("the first user must be an admin (--role admin)")
    else:
        ctx.require(Action.MANAGE_USERS)
    if ctx.session.execute(select(User.id).where(User.username == name)).first():
        raise ConflictError(f"user {name!r} already exists")
    user = User(
        username=name,
        display_name=display_name.strip(),
        role=role_.value,
        unit=unit.strip(),
        jurisdiction=jurisdiction,
        email=email,
        created_at=ctx.now,
    )
    ctx.session.add(user)
    ctx.session.flush()
    ctx.audit(
        "user.add",
        "user",
        name,
        details={"role": role_.value, "unit": user.unit, "jurisdiction": jurisdiction},
    )
    return user


def list_users(ctx: Context) -> list[User]:
    """Every user, by username (any user may see who is who; needs an acting user)."""
    ctx.acting_user  # noqa: B018  (raises when there is none)
    ctx.audit("user.list", "user")
    return list(ctx.session.execute(select(User).order_by(User.username)).scalars())


def agency(ctx: Context) -> Agency | None:
    """The agency's settings, when set."""
    return ctx.session.get(Agency, 1)


def set_agency(
    ctx: Context,
    *,
    name: str | None = None,
    jurisdiction: str | None = None,
    address: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> Agency:
    """Set the agency's name, jurisdiction and contact (admin; or anyone on an empty database)."""
    users = ctx.session.execute(select(func.count()).select_from(User)).scalar_one()
    if users or ctx.user is not None:
        ctx.require(Action.MANAGE_USERS)
    current = agency(ctx)
    if current is None:
        if not name or not jurisdiction:
            raise InputError("the agency needs a name and a jurisdiction (--name, --jurisdiction)")
        current = Agency(id=1, name=name.strip(), jurisdiction=normalise_jurisdiction(jurisdiction))
        ctx.session.add(current)
    if name:
        current.name = name.strip()
    if jurisdiction:
        current.jurisdiction = normalise_jurisdiction(jurisdiction)
    for field, value in (("address", address), ("email", email), ("phone", phone)):
        if value is not None:
            setattr(current, field, value.strip() or None)
    current.updated_at = ctx.now
    ctx.session.flush()
    ctx.audit("agency.set", "agency", 1, details={"name": current.name, "jurisdiction": current.jurisdiction})
    return current


def agency_doc(a: Agency | None) -> dict[str, Any] | None:
    """The agency as JSON values."""
    if a is None:
        return None
    return {
        "name": a.name,
        "jurisdiction": a.jurisdiction,
        "address": a.address,
        "email": a.email,
        "phone": a.phone,
    }
