"""The TFT forward pass for training: the same function and parameters, fewer kernels.

``TemporalFusionTransformer.forward`` spends much of a training step's time in many
small kernels rather than in arithmetic. ``TftTraining`` computes the same network
output (the prediction and the selection weights; the attention weights in eval mode)
from the same input dict with the network's own parameters, with autograd through all
of it, and differs in four ways that change no result beyond float rounding when
dropout is off
(``tests/unit/test_model_train_forward.py`` compares outputs and every gradient):

1. The encoder's and decoder's variable selections run their per-variable GRNs as one
   stacked chain (``nordiqd.model.stacked``).
2. Static contexts enter the time-varying networks as [batch, 1, hidden] broadcasts,
   not projected over copies expanded to every step.
3. The attention heads run as one batched product instead of a loop per head; in
   training mode through torch's fused attention, without keeping the attention weights
   (the loss does not read them: the output's attention entries are None there).
4. Windows of full length skip the LSTMs' sequence packing.

Dropout is drawn at the places the network draws it, with its probability, so training
sees the same distribution of masks, not the same draws. Unlike the serving path
(``nordiqd.model.inference``) nothing is updated in place and no weight is folded ahead
of time: the weights change at every step. ``training_forward`` puts the pass in place
of the network's ``forward`` for a fit and takes it away after; a network this module
does not know keeps its own forward.

Measured on this repository's 2-core box (default size, micro-batches of 16, one torch
thread, ``bench/train.py``): about 126 training windows per CPU-second against 113-114
with the network's own forward; the activation memory of a micro-batch is the same
(+196 against +202 MiB). ``torch.compile`` of this pass was slower still (84 per
CPU-second after a ten-minute compile) and is not used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer import TemporalFusionTransformer
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    InterpretableMultiHeadAttention,
)

from nordiqd.model.errors import ModelError
from nordiqd.model.inference import network_inputs, network_reals
from nordiqd.model.stacked import StackedSelection

_log = logging.getLogger(__name__)


class TftTraining:
    """``network.forward`` for training; see the module docstring.

    Args:
        network: The TFT; its modules and parameters are used as they are, never copied.

    Raises:
        ModelError: The network is not a TFT laid out the way this pass expects.
    """

    def __init__(self, network: Any) -> None:
        if not isinstance(network, TemporalFusionTransformer):
            raise ModelError(f"the training forward needs a TFT, not a {type(network).__name__}")
        if not isinstance(network.multihead_attn, InterpretableMultiHeadAttention):
            raise ModelError("the training forward does not know this TFT's attention")
        if network.multihead_attn.attention.dropout is not None:
            raise ModelError("the training forward does not know attention-weight dropout")
        self.net = network
        self._reals = network_reals(network)
        self._encoder_selection = _stacked(network.encoder_variable_selection)
        self._decoder_selection = _stacked(network.decoder_variable_selection)

    def __call__(self, x: dict[str, Any]) -> Any:
        """``network.forward(x)``: the network's output for an input dict from its loader."""
        net = self.net
        enc_lengths, dec_lengths = x["encoder_lengths"], x["decoder_lengths"]
        inputs, enc = network_inputs(net, x, self._reals)
        if net.static_variables:
            static, static_weights = net.static_variable_selection(
                {n: inputs[n][:, 0] for n in net.static_variables}
            )
        else:
            static = x["encoder_cont"].new_zeros((len(enc_lengths), net.hparams.hidden_size))
            static_weights = x["encoder_cont"].new_zeros((len(enc_lengths), 0))
        context = net.static_context_variable_selection(static)[:, None]
        enc_emb, enc_weights = self._encoder_selection(
            {n: inputs[n][:, :enc] for n in net.encoder_variables}, context
        )
        dec_emb, dec_weights = self._decoder_selection(
            {n: inputs[n][:, enc:] for n in net.decoder_variables}, context
        )

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
        lstm_enc = net.post_lstm_add_norm_encoder(net.post_lstm_gate_encoder(enc_out), enc_emb)
        lstm_dec = net.post_lstm_add_norm_decoder(net.post_lstm_gate_decoder(dec_out), dec_emb)
        lstm_output = torch.cat([lstm_enc, lstm_dec], dim=1)

        attn_input = net.static_enrichment(lstm_output, net.static_context_enrichment(static)[:, None])
        mask = net.get_attention_mask(encoder_lengths=enc_lengths, decoder_lengths=dec_lengths)
        attended, attention = self._attend(attn_input[:, enc:], attn_input, mask)
        output = net.post_attn_gate_norm(attended, attn_input[:, enc:])
        output = net.pos_wise_ff(output)
        output = net.pre_output_gate_norm(output, lstm_output[:, enc:])
        if net.n_targets > 1:
            output = [layer(output) for layer in net.output_layer]
        else:
            output = net.output_layer(output)
        return net.to_network_output(
            prediction=net.transform_output(output, target_scale=x["target_scale"]),
            encoder_attention=None if attention is None else attention[..., :enc],
            decoder_attention=None if attention is None else attention[..., enc:],
            static_variables=static_weights,
            encoder_variables=enc_weights,
            decoder_variables=dec_weights,
            decoder_lengths=dec_lengths,
            encoder_lengths=enc_lengths,
        )

    def _attend(
        self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Interpretable multi-head attention, every head in one product: (the output,
        the weights [batch, query, head, key] as the module stacks them, or None).

        In training the weights are not kept (the loss does not read them) and the heads
        run through torch's fused ``scaled_dot_product_attention``: the [batch, head,
        query, key] scores, their mask and softmax are never stored for the backward
        pass (17 against 26-30 ms for the forward and backward of 16 default windows).
        """
        mha = self.net.multihead_attn
        batch, n_q, n_k, heads, d = q.size(0), q.size(1), kv.size(1), mha.n_head, mha.d_k
        wq = torch.cat([layer.weight for layer in mha.q_layers])
        bq = torch.cat([layer.bias for layer in mha.q_layers])
        wk = torch.cat([layer.weight for layer in mha.k_layers])
        bk = torch.cat([layer.bias for layer in mha.k_layers])
        qs = F.linear(q, wq, bq).view(batch, n_q, heads, d).transpose(1, 2)  # [B, h, Q, d]
        ks = F.linear(kv, wk, bk).view(batch, n_k, heads, d).transpose(1, 2)
        vs = mha.v_layer(kv)[:, None]  # [B, 1, K, d], shared by the heads
        weights: torch.Tensor | None = None
        if self.net.training:
            shared = vs.expand(-1, heads, -1, -1)
            head = F.scaled_dot_product_attention(qs, ks, shared, attn_mask=~mask[:, None])
        else:
            scores = torch.matmul(qs, ks.transpose(-1, -2)) / math.sqrt(d)
            weights = torch.softmax(scores.masked_fill(mask[:, None], mha.mask_bias), dim=-1)
            head = torch.matmul(weights, vs)  # [B, h, Q, d]
        head = mha.dropout(head)
        out = mha.dropout(mha.w_h(head.mean(dim=1) if heads > 1 else head[:, 0]))
        return out, None if weights is None else weights.transpose(1, 2)


def _stacked(vsn: Any) -> Any:
    """The stacked selection where the network allows it, else the module itself."""
    try:
        return StackedSelection(vsn)
    except ModelError:
        return vsn


@contextmanager
def training_forward(network: Any) -> Iterator[None]:
    """Within the block ``network(x)`` runs ``TftTraining`` (when it knows the network).

    The pass is set as the instance's ``forward``, which ``nn.Module.__call__`` looks up
    first; leaving the block deletes it, so the network is as it was: the same class,
    parameters and state dict, saved and served as before.
    """
    try:
        fast = TftTraining(network)
    except ModelError as exc:
        _log.info("training with the network's own forward: %s", exc)
        yield
        return
    network.forward = fast
    try:
        yield
    finally:
        del network.forward
