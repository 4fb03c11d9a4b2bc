"""The local services refuse what the seeds do not allow, so a client that misreads a vendor's contract fails here
first: each service's key in another vendor's auth scheme is a 401 that names the scheme the seed wants."""

from __future__ import annotations

from typing import Any, Dict

import httpx
import pytest
from tether.spec import SPECS

# service -> (a route that wants auth, headers in a wrong scheme, words the refusal must hold)
WRONG_SCHEMES: Dict[str, Any] = {
    "farm": ("/api/jobs", {"Authorization": "Token not-a-login"}, "must be Bearer"),
    "autopilot": ("/api/jobs", {"Authorization": f"Bearer {SPECS['autopilot'].local_key}"},
                  "goes in x-api-key, not Authorization"),
    "tensorpix": ("/api/jobs/", {"Authorization": f"Bearer {SPECS['tensorpix'].local_key}"},
                  "Authorization: Token <key>"),
    "tensorpix-bare": ("/api/jobs/", {"Authorization": str(SPECS["tensorpix"].local_key)}, "Token <key>"),
}


@pytest.mark.parametrize("case", list(WRONG_SCHEMES))
def test_a_key_in_another_scheme_is_refused_saying_which(case: str, local_services: Any) -> None:
    service = case.split("-")[0]
    route, headers, words = WRONG_SCHEMES[case]
    reply = httpx.get(local_services.url(service) + route, headers=headers, timeout=10)
    assert reply.status_code == 401 and words in reply.text, reply.text
