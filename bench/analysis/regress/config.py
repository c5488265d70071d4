"""What `bench regress` counts as a regression: a tolerance and a direction per figure, the significance level,
and which of the machine's conditions make a change unclear (configs/regress.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.errors import UserError


class FigureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    better: Literal["higher", "lower"]
    relative: float | None = Field(None, ge=0, description="tolerated change as a fraction of the baseline")
    absolute: float | None = Field(None, ge=0, description="tolerated change in the figure's own unit")
    run_sd: float | None = Field(None, ge=0, description="the machine's run-to-run standard deviation of the figure "
                                 "(a fraction when the tolerance is relative, else in the figure's unit), as "
                                 "benchmarks/regress_false_alarms.py measures it; used against a one-run baseline")

    @model_validator(mode="after")
    def _one_tolerance(self) -> FigureRule:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of 'relative' or 'absolute'")
        return self


DEFAULT_FIGURES: dict[str, FigureRule] = {  # as configs/regress.toml, which `bench regress` reads by default
    "qps": FigureRule(better="higher", relative=0.05, run_sd=0.055),
    "p50_us": FigureRule(better="lower", relative=0.10, run_sd=0.05),
    "p99_us": FigureRule(better="lower", relative=0.10, run_sd=0.11),
    "recall": FigureRule(better="higher", absolute=0.01),
}


class RegressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the Mann-Whitney U test")
    sentinel: bool = Field(True, description="a regression the suite's sentinel shows too is the machine's: unclear")
    host: bool = Field(True, description="a regression measured on a busier machine than its baseline: unclear")
    busier_cores: float = Field(0.25, ge=0, description="other processes' mean cores more in the candidate than in "
                                "the baseline that make its machine busier")
    figures: dict[str, FigureRule] = Field(default_factory=lambda: dict(DEFAULT_FIGURES))


def load_config(path: str | Path | None) -> RegressConfig:
    if path is None:
        return RegressConfig()
    from bench.spec import format_validation_error, read_toml

    data = read_toml(Path(path), "regress config")
    try:
        return RegressConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, f"Regress config {path}", model=RegressConfig),
                        "fix the value in the file") from None
