"""What the model is: targets, quantiles, time grid and network size.

``ModelSpec`` is the ``[model]`` config section 1:1 (``targets``, ``step_seconds``,
``encoder_steps``, ``horizon_steps``, ``quantiles`` and ``hidden_size`` are fixed names;
the rest are ours). It is also stored with every trained model, so a model directory
says exactly what it was built for.
"""

from __future__ import annotations

import msgspec

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

# Names the dataset reserves for its own columns; a metric cannot use them.
_RESERVED = frozenset({"timestamp", "server_name", "profile", "series", "time_idx", "relative_time_idx"})


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
        batch_size: Training windows per batch.
        max_fill_steps: Gaps of at most this many steps are interpolated; longer gaps
            split a server's history into separate series.
        max_windows_per_epoch: Random training windows drawn per epoch (0 = all). One
            window starts at every step, so a 30-day fleet has millions of them.
        unseen_share: Share of servers copied once more with their name hidden, so the
            unknown-server embedding learns the average server of each profile.
        gradient_clip: Gradient norm clip value.
    """

    targets: tuple[str, ...] = DEFAULT_TARGETS
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    step_seconds: int = 300
    encoder_steps: int = 288
    horizon_steps: int = 96
    hidden_size: int = 32
    attention_heads: int = 4
    hidden_continuous_size: int = 16
    dropout: float = 0.1
    learning_rate: float = 3e-3
    batch_size: int = 128
    max_fill_steps: int = 6
    max_windows_per_epoch: int = 100_000
    unseen_share: float = 0.1
    gradient_clip: float = 0.1

    def __post_init__(self) -> None:
        """Reject values the model cannot work with (msgspec reports them per key)."""
        if not self.targets:
            raise ValueError("targets must name at least one metric")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("targets must not repeat a metric")
        for name in self.targets:
            if name in _RESERVED or "." in name:
                raise ValueError(f"target {name!r} is a reserved or invalid name")
        qs = self.quantiles
        if not qs or any(not 0.0 < q < 1.0 for q in qs):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        if any(b <= a for a, b in zip(qs, qs[1:], strict=False)):
            raise ValueError("quantiles must be strictly increasing")
        if 0.5 not in qs:
            raise ValueError("quantiles must contain 0.5 (the point forecast)")
        for key in (
            "step_seconds",
            "encoder_steps",
            "horizon_steps",
            "hidden_size",
            "attention_heads",
            "hidden_continuous_size",
            "batch_size",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1")
        if self.encoder_steps < 2:
            raise ValueError("encoder_steps must be at least 2")
        if self.hidden_size % self.attention_heads:
            raise ValueError("hidden_size must be a multiple of attention_heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.max_fill_steps < 0 or self.max_windows_per_epoch < 0:
            raise ValueError("max_fill_steps and max_windows_per_epoch must be >= 0")
        if not 0.0 <= self.unseen_share <= 1.0:
            raise ValueError("unseen_share must be in [0, 1]")

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
