"""Canary steps, including the Gateway API ones: A/B (``setMatch``) and shadow (``setMirror``).

Each step does one thing. ``setWeight`` splits all traffic by percent; ``setMatch`` sends the
requests that match headers or a cookie to the canary and everything else to stable (live weight
0 for the rest, Flagger's A/B testing); ``setMirror`` copies a percentage of live traffic to the
canary, whose answers are thrown away, while stable still answers every request (shadow traffic).
The last of these three steps up to the current one decides how traffic is split; steps can mix
them, e.g. ``setMirror`` → ``analysis`` → ``setMatch`` → ``analysis`` → ``setWeight 20`` → ...

Matches mirror the Gateway API's ``HTTPRouteMatch``: within one entry every condition must hold;
a request matching any entry goes to the canary. A cookie condition becomes a ``Cookie`` header
regular expression on the HTTPRoute (Gateway API has no cookie match), as Flagger does.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import ApiModel, Duration, cel, exactly_one, require_one_of

# RFC 7230 token: what Gateway API accepts as a header name (HTTPHeaderName).
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
COOKIE_NAME = HEADER_NAME
# A cookie value kept to characters that need no quoting in a cookie nor care in a regex.
COOKIE_VALUE = r"^[A-Za-z0-9._~\-]+$"
MAX_MATCHES = 8  # entries in setMatch.matches
MAX_HEADERS = 8  # header conditions in one entry (Gateway API allows 16 with the user's own)
STEP_KINDS = ["setWeight", "pause", "analysis", "setCanaryScale", "setMatch", "setMirror"]


class HeaderMatch(ApiModel):
    """One request header condition (Gateway API HTTPHeaderMatch)."""

    name: str = Field(
        ..., min_length=1, max_length=256, pattern=HEADER_NAME, description="Header name (any case)."
    )
    type: Literal["Exact", "RegularExpression"] = Field(
        "Exact",
        description="Exact (default) or RegularExpression (RE2 syntax, matched against the whole value).",
    )
    value: str = Field(..., min_length=1, max_length=4096, description="Value, or the regular expression.")

    @model_validator(mode="after")
    def _regex(self) -> HeaderMatch:
        if self.type == "RegularExpression":
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"header {self.name}: invalid regular expression {self.value!r}: {e}") from e
        return self


class CookieMatch(ApiModel):
    """A cookie the request must carry with exactly this value (a ``Cookie`` header match)."""

    name: str = Field(..., min_length=1, max_length=64, pattern=COOKIE_NAME, description="Cookie name.")
    value: str = Field(
        ..., min_length=1, max_length=256, pattern=COOKIE_VALUE, description="Cookie value (exact)."
    )

    def header_regex(self) -> str:
        """The ``Cookie`` header regular expression that holds exactly when the cookie is present."""
        return f"^(.*;\\s*)?{re.escape(self.name)}={re.escape(self.value)}(;.*)?$"


class RequestMatch(ApiModel):
    """One way to be in the canary group: every header condition and the cookie must hold."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.headers) && size(self.headers) > 0) || has(self.cookie)",
                    "a match needs at least one header or a cookie",
                ),
                cel(
                    "!has(self.headers) || self.headers.all(h, self.headers.filter(o, "
                    "o.name.lowerAscii() == h.name.lowerAscii()).size() == 1)",
                    "header names must be unique within a match (case-insensitive)",
                    ".headers",
                ),
                cel(
                    "!has(self.headers) || !has(self.cookie) || "
                    "self.headers.all(h, h.name.lowerAscii() != 'cookie')",
                    "a match with a cookie cannot also match the Cookie header",
                    ".headers",
                ),
            ]
        }
    )

    headers: list[HeaderMatch] = Field(
        default_factory=list, max_length=MAX_HEADERS, description="Header conditions (all must hold)."
    )
    cookie: CookieMatch | None = Field(None, description="A cookie the request must carry.")

    @model_validator(mode="after")
    def _rules(self) -> RequestMatch:
        if not self.headers and self.cookie is None:
            raise ValueError("a match needs at least one header or a cookie")
        names = [h.name.lower() for h in self.headers]
        if len(set(names)) != len(names):
            raise ValueError("header names must be unique within a match (case-insensitive)")
        if self.cookie is not None and "cookie" in names:
            raise ValueError("a match with a cookie cannot also match the Cookie header")
        return self

    def gateway_headers(self) -> list[dict[str, str]]:
        """The Gateway API ``headers`` list of this match (the cookie as a Cookie header regex)."""
        out = [{"name": h.name, "type": h.type, "value": h.value} for h in self.headers]
        if self.cookie is not None:
            out.append({"name": "Cookie", "type": "RegularExpression", "value": self.cookie.header_regex()})
        return out


class SetMatch(ApiModel):
    """A/B: requests matching any entry go to the canary, all others to stable."""

    matches: list[RequestMatch] = Field(
        ...,
        min_length=1,
        max_length=MAX_MATCHES,
        description="Requests matching any entry go to the canary; everything else stays on stable.",
    )


class SetMirror(ApiModel):
    """Shadow: copy ``percent`` of live requests to the canary; its answers are discarded."""

    percent: int = Field(..., ge=1, le=100, description="Percent of live requests mirrored to the canary.")


class PauseStep(ApiModel):
    duration: Duration | None = Field(
        None, description="How long to pause; omitted: wait for a promote command."
    )


class AnalysisStep(ApiModel):
    duration: Duration = Field(..., description="How long to measure the canary before the next step.")


class SetCanaryScale(ApiModel):
    """Canary pod count independent of weight (e.g. warm pods before any traffic)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    exactly_one(["replicas", "weight", "matchTrafficWeight"]),
                    "setCanaryScale: set exactly one of replicas, weight, matchTrafficWeight",
                )
            ]
        }
    )

    replicas: int | None = Field(None, ge=0, le=1000, description="Canary replicas.")
    weight: int | None = Field(None, ge=0, le=100, description="Canary replicas as % of spec.replicas.")
    match_traffic_weight: bool | None = Field(None, description="Follow the traffic weight again.")

    @model_validator(mode="after")
    def _one(self) -> SetCanaryScale:
        require_one_of(self, ["replicas", "weight", "match_traffic_weight"], "setCanaryScale")
        return self


class CanaryStep(ApiModel):
    """One canary step: exactly one of setWeight, pause, analysis, setCanaryScale, setMatch, setMirror."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(exactly_one(STEP_KINDS), "each step sets exactly one of " + ", ".join(STEP_KINDS))
            ]
        }
    )

    set_weight: int | None = Field(None, ge=0, le=100, description="Percent of traffic to the canary.")
    pause: PauseStep | None = Field(None, description="Hold the current weight (timed, or until promoted).")
    analysis: AnalysisStep | None = Field(None, description="Measure guardrails at the current weight.")
    set_canary_scale: SetCanaryScale | None = Field(None, description="Canary pod count, apart from weight.")
    set_match: SetMatch | None = Field(
        None, description="A/B (gatewayAPI only): matching requests to the canary, the rest to stable."
    )
    set_mirror: SetMirror | None = Field(
        None, description="Shadow (gatewayAPI only): mirror a percent of live traffic to the canary."
    )

    @model_validator(mode="after")
    def _one(self) -> CanaryStep:
        fields = ["set_weight", "pause", "analysis", "set_canary_scale", "set_match", "set_mirror"]
        require_one_of(self, fields, "canary step")
        return self

    @property
    def routes_traffic(self) -> bool:
        """Whether the step decides how traffic is split (setWeight, setMatch, setMirror)."""
        return self.set_weight is not None or self.set_match is not None or self.set_mirror is not None


def _default_steps() -> list[CanaryStep]:
    return [
        CanaryStep(set_weight=10),
        CanaryStep(analysis=AnalysisStep(duration="1m")),
        CanaryStep(set_weight=50),
        CanaryStep(analysis=AnalysisStep(duration="1m")),
    ]


class SessionAffinity(ApiModel):
    """Sticky canary sessions (weighted steps, gatewayAPI only): a user the weights sent to the canary
    gets a cookie, and requests carrying it keep going to the canary until the rollout ends."""

    cookie_name: str = Field(
        ..., min_length=1, max_length=64, pattern=COOKIE_NAME, description="Name of the session cookie."
    )
    max_age: Duration = Field("24h", description="The cookie's Max-Age.")


class CanaryStrategy(ApiModel):
    steps: list[CanaryStep] = Field(
        default_factory=_default_steps,
        max_length=32,
        description="Steps walked in order; 100% is reached by promotion after the last step.",
    )
    session_affinity: SessionAffinity | None = Field(
        None, description="gatewayAPI only: keep a user the weights sent to the canary on the canary."
    )


# CEL on spec.rollout: the Gateway API steps need the gatewayAPI router.
GATEWAY_ONLY_STEPS_RULE = cel(
    "has(self.trafficRouting.gatewayAPI) || !has(self.canary) || (!has(self.canary.sessionAffinity) && "
    "(!has(self.canary.steps) || self.canary.steps.all(s, !has(s.setMatch) && !has(s.setMirror))))",
    "setMatch (A/B), setMirror (shadow) and sessionAffinity need trafficRouting.gatewayAPI: an HTTPRoute "
    "matches headers, mirrors requests and sets cookies; the replicas router can only split by pod count",
    ".canary",
)


def gateway_steps_error(canary: CanaryStrategy, router: str) -> str | None:
    """pydantic's side of :data:`GATEWAY_ONLY_STEPS_RULE`."""
    if router == "gatewayAPI":
        return None
    gateway_steps = any(s.set_match is not None or s.set_mirror is not None for s in canary.steps)
    if gateway_steps or canary.session_affinity is not None:
        return str(GATEWAY_ONLY_STEPS_RULE["message"])
    return None


class SessionCookie(ApiModel):
    """Status: the sticky-session cookie the canary's answers set (``name=value``, ``Max-Age``)."""

    name: str = Field(..., max_length=64, pattern=COOKIE_NAME, description="Cookie name.")
    value: str = Field(..., max_length=256, pattern=COOKIE_VALUE, description="Cookie value (the revision).")
    max_age_seconds: int = Field(..., ge=0, le=31_536_000, description="The cookie's Max-Age.")

    def set_cookie(self) -> str:
        return f"{self.name}={self.value}; Max-Age={self.max_age_seconds}; Path=/"

    def match(self) -> RequestMatch:
        return RequestMatch(cookie=CookieMatch(name=self.name, value=self.value))


class CanaryTraffic(ApiModel):
    """Status: the A/B match or the mirror the router was last asked for (none: weights only)."""

    matches: list[RequestMatch] = Field(
        default_factory=list, max_length=MAX_MATCHES, description="A/B: requests sent to the canary."
    )
    mirror_percent: int | None = Field(
        None, ge=1, le=100, description="Shadow: percent of live requests mirrored to the canary."
    )
    step: int = Field(0, ge=0, le=64, description="Index of the step that set it.")
    session: SessionCookie | None = Field(
        None, description="Weighted steps with sessionAffinity: the cookie that keeps a user on the canary."
    )

    @property
    def holds_live_weight(self) -> bool:
        """Whether this traffic lives alongside a live weight (only a session cookie does)."""
        return not self.matches and self.mirror_percent is None
