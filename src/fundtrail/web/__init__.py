"""The dashboard's assets: Jinja2 templates and static files (scripts, styles, vendored libraries).

The pages that render them are routes of the service, :mod:`fundtrail.api.pages` and
:mod:`fundtrail.api.casepages`; this package holds no Python that imports the rest of FundTrail.
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
"""The folder of the dashboard's assets."""
TEMPLATES = ASSETS / "templates"
"""The Jinja2 templates of the pages."""
STATIC = ASSETS / "static"
"""The static files, served under ``/static``."""
