"""What the model is: targets, quantiles, time grid and network size.

``ModelSpec`` is the ``[model]`` config section 1:1 (``targets``, ``step_seconds``,
``encoder_steps``, ``horizon_steps``, ``quantiles`` and ``hidden_size`` are fixed names;
the rest are ours). It is also stored with every trained model, so a model directory
says exactly what it was built for.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from nordiqd.names import MetricName

# Why these five: they carry the incidents the alerts are about. cpu_user is CPU
# saturation (cpu_idle and cpu_sys mostly mirror it), cpu_iowait is storage stalls,
# mem_used and swap_used are memory pressure (swap growth precedes the OOM killer) and
# load_average is run-queue pressure. disk_usage moves over days, not the 8 h horizon;
# network rates and close-wait counters are workload shape, not risk.
DEFAULT_TARGETS: tuple[str, ...] = (
    "cpu_user_pct",
    "cpu_iowait_pct",
    "mem_used_pct",
    "swap_used_pct",
    "load_average",
)


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Shape and training settings of the TFT fleet model.

    Attributes:
        targets: Metrics the model forecasts, in output order.
        quantiles: Forecast quantiles, strictly increasing in (0, 1), containing 0.5.
        step_seconds: Model step; samples are averaged into buckets of this length.
        encoder_steps: Steps of history the model reads (288 x 300 s = 24 h).
        horizon_steps: Steps it forecasts (96 x 300 s = 8 h).
        hidden_size: Width of the TFT's hidden layers.
        attention_heads: Attention heads of the TFT.
        hidden_continuous_size: Width of the per-variable networks of continuous inputs.
        dropout: Dropout rate while training.
        learning_rate: Adam learning rate.
        batch_size: Training windows per batch (per optimiser step).
        micro_batch_size: On the CPU a batch runs forward and backward in parts of at
            most this many windows whose gradients add up before the one optimiser step:
            the same step (exactly, where the parts divide the batch evenly) with a
            fraction of the activation memory. GPUs run the batch whole.
        max_fill_steps: Gaps of at most this many steps are interpolated; longer gaps
            split a server's history into separate series.
        max_windows_per_epoch: Random training windows drawn per epoch (0 = all). One
            window starts at every step, so a 30-day fleet has millions of them.
        unseen_share: Share of servers copied once more with their name hidden, so the
            unknown-server embedding learns the average server of each profile.
        gradient_clip: Gradient norm clip value.
    """

    # Upper bounds keep a model within one machine: the predictor holds encoder_steps
    # per metric and server, and a training batch holds batch_size whole windows.
    targets: Annotated[tuple[MetricName, ...], Meta(min_length=1, max_length=64)] = DEFAULT_TARGETS
    quantiles: Annotated[tuple[float, ...], Meta(min_length=1, max_length=99)] = (0.1, 0.5, 0.9)
    step_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 300
    encoder_steps: Annotated[int, Meta(ge=2, le=10_000)] = 288
    horizon_steps: Annotated[int, Meta(ge=1, le=10_000)] = 96
    hidden_size: Annotated[int, Meta(ge=1, le=1024)] = 32
    attention_heads: Annotated[int, Meta(ge=1, le=64)] = 4
    hidden_continuous_size: Annotated[int, Meta(ge=1, le=1024)] = 16
    dropout: Annotated[float, Meta(ge=0, lt=1)] = 0.1
    learning_rate: Annotated[float, Meta(gt=0, le=10)] = 3e-3
    batch_size: Annotated[int, Meta(ge=1, le=65_536)] = 128
    micro_batch_size: Annotated[int, Meta(ge=1, le=65_536)] = 16
    max_fill_steps: Annotated[int, Meta(ge=0, le=10_000)] = 6
    max_windows_per_epoch: Annotated[int, Meta(ge=0, le=1_000_000_000)] = 100_000
    unseen_share: Annotated[float, Meta(ge=0, le=1)] = 0.1
    gradient_clip: Annotated[float, Meta(ge=0, le=1e6)] = 0.1

    def __post_init__(self) -> None:
        """Reject what the bounds cannot say (each message starts with the key at fault)."""
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("targets must not repeat a metric")
        for name in self.targets:
            # The dataset adds a <target>_center and a <target>_scale column.
            for suffix in ("_center", "_scale"):
                if name.endswith(suffix) and name.removesuffix(suffix) in self.targets:
                    raise ValueError(f"targets must not hold both {name.removesuffix(suffix)!r} and {name!r}")
        qs = self.quantiles
        if any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        if any(b <= a for a, b in zip(qs, qs[1:], strict=False)):
            raise ValueError("quantiles must be strictly increasing")
        if 0.5 not in qs:
            raise ValueError("quantiles must contain 0.5 (the point forecast)")
        if self.hidden_size % self.attention_heads:
            raise ValueError("hidden_size must be a multiple of attention_heads")

    @property
    def season_steps(self) -> int:
        """Steps in one day: the seasonal-naive lag."""
        return max(1, 86_400 // self.step_seconds)

    @property
    def median_index(self) -> int:
        """Position of the 0.5 quantile in ``quantiles``."""
        return self.quantiles.index(0.5)

    def structure(self) -> dict[str, object]:
        """The fields a trained network is bound to; incremental training needs them equal."""
        return {
            "targets": list(self.targets),
            "quantiles": list(self.quantiles),
            "step_seconds": self.step_seconds,
            "encoder_steps": self.encoder_steps,
            "horizon_steps": self.horizon_steps,
            "hidden_size": self.hidden_size,
            "attention_heads": self.attention_heads,
            "hidden_continuous_size": self.hidden_continuous_size,
        }

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict of every field (sequences as lists, as JSON reads them)."""
        return msgspec.json.decode(msgspec.json.encode(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelSpec:
        """Build from a dict such as a config section or a stored spec.

        Raises:
            msgspec.ValidationError: A key is unknown or a value is invalid; the
                message names the key.
        """
        return msgspec.convert(data, cls)
