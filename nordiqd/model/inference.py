"""The TFT forward pass for serving: the same forecasts, without the work batching repeats.

pytorch-forecasting's ``TemporalFusionTransformer.forward`` is written for training on
windows that each have their own times. Serving runs one pass over a fleet whose windows
mostly end at the same step, and needs only the forecast. ``TftInference`` computes the
network's ``prediction`` from the same input dict with the network's own modules and
weights, and differs in four ways that change no result (tests hold it to 1e-4):

1. A time-varying input that is the same for every window of the batch (the known time
   features and ``relative_time_idx`` when the windows end at the same step) goes through
   its variable network once, then broadcasts, instead of once per server; a server's
   input that stays the same through its window (a metric at 0 all day), once per window.
2. Static contexts are added to the time-varying networks as [batch, 1, hidden]
   broadcasts instead of being projected over copies expanded to every time step.
3. Attention averages the heads' weights before applying the value they share, a few
   windows at a time, and keeps no weights for interpretation.
4. Windows of full length skip the LSTM's sequence packing.

The GRNs and gates around them run with their linear layers folded and their additions
in place (``nordiqd.model.gating``), the variable selections with their affine front
folded (``nordiqd.model.selection``).

Measured on this repository's 2-core box, default model size, 64 windows per batch, one
torch thread: about 63 ms per batch against 240 ms for ``network(x)``, 1.0-1.1 s for 1,000
servers (``bench/predict.py`` prints the fleet figures). A network this module does not
know raises ``ModelError`` at construction; ``WindowForecaster`` then falls back to
``network(x)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer import TemporalFusionTransformer
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    InterpretableMultiHeadAttention,
    VariableSelectionNetwork,
)

from nordiqd.model.errors import ModelError
from nordiqd.model.gating import Gate, Grn
from nordiqd.model.selection import FoldedSelection, select

Prediction = torch.Tensor | list[torch.Tensor]
ATTENTION_CHUNK = 4  # windows per attention block: 4 x 4 heads x 96 x 384 scores stay in the cache


class TftInference:
    """Forecast-only forward pass of a pytorch-forecasting TFT; see the module docstring.

    Args:
        network: The trained network, in eval mode. It is read, never modified.

    Raises:
        ModelError: The network is not a TFT laid out the way this pass expects.
    """

    def __init__(self, network: Any) -> None:
        if not isinstance(network, TemporalFusionTransformer):
            raise ModelError(f"fast inference needs a TFT, not a {type(network).__name__}")
        mha = network.multihead_attn
        selections = (
            network.static_variable_selection,
            network.encoder_variable_selection,
            network.decoder_variable_selection,
        )
        if not isinstance(mha, InterpretableMultiHeadAttention) or not all(
            isinstance(s, VariableSelectionNetwork) for s in selections
        ):
            raise ModelError("fast inference does not know this TFT's attention or variable selection")
        self.net = network
        self._reals = network_reals(network)
        # All heads' query and key projections as one linear layer each; the query's
        # carries the scores' 1 / sqrt(d).
        scale = mha.d_k**-0.5
        self._wq = torch.cat([layer.weight for layer in mha.q_layers]).detach() * scale
        self._bq = torch.cat([layer.bias for layer in mha.q_layers]).detach() * scale
        self._wk = torch.cat([layer.weight for layer in mha.k_layers]).detach()
        self._bk = torch.cat([layer.bias for layer in mha.k_layers]).detach()
        self._mask_bias = float(getattr(mha, "mask_bias", -1e9))
        self._encoder_selection = _folded(network.encoder_variable_selection)
        self._enrichment = Grn(network.static_enrichment)
        self._feed_forward = Grn(network.pos_wise_ff)
        self._post_lstm_encoder = Gate(network.post_lstm_gate_encoder, network.post_lstm_add_norm_encoder)
        self._post_lstm_decoder = Gate(network.post_lstm_gate_decoder, network.post_lstm_add_norm_decoder)
        self._post_attention = Gate(network.post_attn_gate_norm.glu, network.post_attn_gate_norm.add_norm)
        self._pre_output = Gate(network.pre_output_gate_norm.glu, network.pre_output_gate_norm.add_norm)
        self._decoder_selection = _folded(network.decoder_variable_selection)

    def __call__(self, x: dict[str, Any]) -> Prediction:
        """``network(x)["prediction"]`` for an input dict as the network's dataloader makes it."""
        net = self.net
        enc_lengths, dec_lengths = x["encoder_lengths"], x["decoder_lengths"]
        inputs, enc = network_inputs(net, x, self._reals)
        if net.static_variables:
            static = net.static_variable_selection({n: inputs[n][:, 0] for n in net.static_variables})[0]
        else:
            static = x["encoder_cont"].new_zeros((len(enc_lengths), net.hparams.hidden_size))
        context = net.static_context_variable_selection(static)[:, None]
        enc_inputs = {n: inputs[n][:, :enc] for n in net.encoder_variables}
        dec_inputs = {n: inputs[n][:, enc:] for n in net.decoder_variables}
        enc_emb = self._encoder_selection(enc_inputs, context)
        dec_emb = self._decoder_selection(dec_inputs, context)

        layers = net.hparams.lstm_layers
        hidden = net.static_context_initial_hidden_lstm(static).expand(layers, -1, -1)
        cell = net.static_context_initial_cell_lstm(static).expand(layers, -1, -1)
        # Full windows need no packing (the lengths only matter for padded ones).
        full = bool((enc_lengths == enc).all()) and bool((dec_lengths == dec_emb.size(1)).all())
        enc_out, state = net.lstm_encoder(
            enc_emb, (hidden, cell), lengths=None if full else enc_lengths, enforce_sorted=False
        )
        dec_out, _ = net.lstm_decoder(
            dec_emb, state, lengths=None if full else dec_lengths, enforce_sorted=False
        )
        lstm_enc = self._post_lstm_encoder(enc_out, enc_emb)
        lstm_dec = self._post_lstm_decoder(dec_out, dec_emb)
        lstm_output = torch.cat([lstm_enc, lstm_dec], dim=1)

        enrichment = net.static_context_enrichment(static)[:, None]
        attn_input = self._enrichment(lstm_output, enrichment)
        attended = self._attend(attn_input[:, enc:], attn_input, enc_lengths, dec_lengths)
        output = self._post_attention(attended, attn_input[:, enc:])
        output = self._feed_forward(output)
        output = self._pre_output(output, lstm_output[:, enc:])
        if net.n_targets > 1:
            return net.transform_output(
                [layer(output) for layer in net.output_layer], target_scale=x["target_scale"]
            )
        return net.transform_output(net.output_layer(output), target_scale=x["target_scale"])

    def _attend(
        self, q: torch.Tensor, kv: torch.Tensor, enc_lengths: torch.Tensor, dec_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Interpretable multi-head attention: the mean of the heads over a shared value."""
        mha = self.net.multihead_attn
        batch, n_q, n_k, heads, d = q.size(0), q.size(1), kv.size(1), mha.n_head, mha.d_k
        masked = self.net.get_attention_mask(encoder_lengths=enc_lengths, decoder_lengths=dec_lengths)
        if bool((enc_lengths == enc_lengths[0]).all()) and bool((dec_lengths == dec_lengths[0]).all()):
            masked = masked[:1]  # the mask depends only on the lengths
        bias = torch.zeros(masked.shape, dtype=q.dtype).masked_fill_(masked, self._mask_bias)[:, None]
        qs = F.linear(q, self._wq, self._bq).view(batch, n_q, heads, d).transpose(1, 2)
        ks = F.linear(kv, self._wk, self._bk).view(batch, n_k, heads, d).transpose(1, 2)
        vs = mha.v_layer(kv)
        # The heads share the value, so the mean of their outputs is the mean of their
        # attention weights times it. Computed a few windows at a time, the weights stay in
        # the cache: at a head width of 8 that beats the fused kernel (17 against 18 ms a
        # batch, 4 windows a little ahead of 8).
        mean = torch.empty(batch, n_q, d, dtype=q.dtype)
        for lo in range(0, batch, ATTENTION_CHUNK):
            hi = min(batch, lo + ATTENTION_CHUNK)
            scores = torch.matmul(qs[lo:hi], ks[lo:hi].transpose(-1, -2))
            scores.add_(bias if bias.size(0) == 1 else bias[lo:hi])
            torch.bmm(torch.softmax(scores, dim=-1).mean(dim=1), vs[lo:hi], out=mean[lo:hi])
        out: torch.Tensor = mha.w_h(mean)
        return out


def network_reals(net: Any) -> list[tuple[int, str]]:
    """(column in the continuous inputs, name) of each real the network reads, for
    ``network_inputs``: built once per network, not per batch."""
    return [(i, name) for i, name in enumerate(net.hparams.x_reals) if name in net.reals]


def network_inputs(
    net: Any, x: dict[str, Any], reals: list[tuple[int, str]]
) -> tuple[dict[str, torch.Tensor], int]:
    """The TFT's inputs by variable name over the encoder's and decoder's steps, and the
    encoder's length: the embedded categoricals, and each real of ``reals``
    (``network_reals``) as [batch, steps, 1]. As the network's own forward prepares
    them; the training forward (``train_forward``) shares this.
    """
    x_cat = torch.cat([x["encoder_cat"], x["decoder_cat"]], dim=1)
    x_cont = torch.cat([x["encoder_cont"], x["decoder_cont"]], dim=1)
    inputs: dict[str, torch.Tensor] = net.input_embeddings(x_cat)
    inputs.update({name: x_cont[..., i].unsqueeze(-1) for i, name in reals})
    return inputs, int(x["encoder_lengths"].max())


def _folded(vsn: Any) -> Any:
    """The folded selection where the network allows it, else the unfolded one."""
    try:
        return FoldedSelection(vsn)
    except ModelError:
        return lambda x, context: select(vsn, x, context)
