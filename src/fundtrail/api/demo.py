"""Demo step of the service: dashboard sign-in for the demo users, and how to open the dashboard.

Each demo user without a password gets a random one, printed once in the demo's hints (FundTrail keeps
only its argon2 hash). ``FUNDTRAIL_DEMO_PASSWORD`` gives them all that password instead (for
scripted runs). Run again, the step keeps the passwords already set.
"""

from __future__ import annotations

import os
import secrets

from fundtrail.scenarios.demo import DemoContext, DemoStep, StepSkipped, add_step

PASSWORD_ENV = "FUNDTRAIL_DEMO_PASSWORD"


def step_logins(ctx: DemoContext) -> str:
    """Set a password for every demo user that has none; hint how to sign in to the dashboard."""
    from fundtrail.api.auth import AuthService
    from fundtrail.api.casework import CaseWork
    from fundtrail.api.state import ApiSettings
    from fundtrail.cases.demo import USERS

    cases = CaseWork.open(ctx.home)
    try:
        if cases.user(USERS[0][0]) is None:
            raise StepSkipped("the demo agency has no users")
        auth = AuthService(cases, ApiSettings())
        given = os.environ.get(PASSWORD_ENV) or None
        new: dict[str, str] = {}
        for username, _name, _role in USERS:
            if cases.password_hash(username) is None:
                password = given or secrets.token_urlsafe(12)
                auth.set_password(username, password)
                new[username] = password
    finally:
        cases.close()
    url = "http://127.0.0.1:8000/"
    ctx.hints.append(f"the dashboard: fundtrail serve --home {ctx.home}, then open {url}")
    if new and not given:
        ctx.hints.append("dashboard sign-in (shown once; reset with fundtrail token password USER): "
                         + ", ".join(f"{u} / {p}" for u, p in new.items()))
    elif new:
        ctx.hints.append(f"dashboard sign-in: {', '.join(new)} with the password in ${PASSWORD_ENV}")
    if not new:
        return "dashboard sign-in already set for the demo users"
    return f"dashboard sign-in set for {len(new)} users ({', '.join(new)})"


STEP = DemoStep("logins", "Let the demo users sign in to the dashboard", step_logins)


def register() -> None:
    """Add the step after the case layer's agency step (at the end when that step is absent)."""
    from fundtrail.scenarios.demo import DEMO_STEPS

    names = [s.name for s in DEMO_STEPS]
    add_step(STEP, after="agency" if "agency" in names else None)


register()
