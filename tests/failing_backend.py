"""`python tests/failing_backend.py serve ...`: the real backend plus a generator named "failing" that raises
after FAIL_AFTER steps, so tests exercise the job_failed path without a debug switch in the product."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.cli import main  # noqa: E402
from backend.generators import GenerateRequest, ProceduralGenerator, StepCallback, registry  # noqa: E402
from backend.generators.base import Interrupt  # noqa: E402
from backend.generators.procedural import STYLES  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402

FAIL_AFTER = 3


class FailingGenerator(ProceduralGenerator):
    """The procedural generator, but its step FAIL_AFTER raises."""

    def generate(self, request: GenerateRequest, on_step: StepCallback,
                 interrupt: Interrupt | None = None) -> Heightfield:
        def failing_step(step: int, total: int, preview) -> None:
            on_step(step, total, preview)
            if step >= FAIL_AFTER:
                raise RuntimeError(f"injected failure after step {step}")

        return super().generate(request, failing_step, interrupt)


registry.register(registry.GeneratorSpec("failing", tuple(STYLES), FailingGenerator))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
