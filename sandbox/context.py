"""The one object every route works on: config, state and fault knobs, stored on the aiohttp app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.state import SandboxState


@dataclass
class Sandbox:
    config: SandboxConfig
    state: SandboxState
    faults: FaultInjector

    @classmethod
    def from_config(cls, config: SandboxConfig) -> Sandbox:
        return cls(config, SandboxState(config), FaultInjector(config.seed))

    def reset(self) -> None:
        """Back to the configured start: no audiences, no calls, default knobs, issued tokens forgotten."""
        self.state.reset()
        self.faults.reset(self.config.seed)


SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)


def sandbox_of(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]
