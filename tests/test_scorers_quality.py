"""Quality scorers: hand-computed per-token values on fixed texts (judge stand-ins with known distributions)."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from scorer_fixtures import (
    BigramLM,
    CharRuleTagger,
    call,
    char_tokenizer,
    coarse_tokenizer,
    encode,
    policy_tokenizer,
    successor_bigram,
)

from trl_token_ext.scorers import ImplicitPRMQuality, LexiconQuality, LogProbQuality, TokenClassifierQuality

TEXT = "The movie was wonderful."
# Policy tokens of TEXT: ['The', 'Ġmovie', 'Ġwas', 'Ġw', 'o', 'nd', 'er', 'ful', '.'] -> character lengths:
TOKEN_LENGTHS = [3, 6, 4, 2, 1, 2, 2, 3, 1]
V = 320  # policy vocabulary
Z = V - 1 + 3  # normaliser of the successor bigram: p(a+1|a) = 3/Z, anything else 1/Z


def test_fixture_tokenizations():
    tokens = policy_tokenizer().convert_ids_to_tokens(encode(TEXT))
    assert tokens == ["The", "Ġmovie", "Ġwas", "Ġw", "o", "nd", "er", "ful", "."]
    assert len(char_tokenizer()(TEXT)["input_ids"]) == len(TEXT)


def _prompt_last_id(prompt="Review:"):
    return encode(prompt)[-1]


def test_logprob_same_tokenizer_hand_computed():
    q = _prompt_last_id()
    scorer = LogProbQuality(successor_bigram(V))
    (values,) = call(scorer, [[q + 1, q + 2, q + 1]])
    expected = [math.log(3 / Z), math.log(3 / Z), math.log(1 / Z)]
    assert values == pytest.approx(expected, abs=1e-5)


def test_logprob_clip_and_centering():
    q = _prompt_last_id()
    ids = [[q + 1, q + 2, q + 1]]
    raw = [math.log(3 / Z), math.log(3 / Z), math.log(1 / Z)]
    clipped = call(LogProbQuality(successor_bigram(V), clip_min=-5.0), ids)[0]
    assert clipped == pytest.approx([max(v, -5.0) for v in raw], abs=1e-5)
    centred = call(LogProbQuality(successor_bigram(V), center="completion"), ids)[0]
    mean = sum(raw) / 3
    assert centred == pytest.approx([v - mean for v in raw], abs=1e-5)
    # A uniform judge: log p = -log V and the entropy is log V, so entropy centring gives exactly 0.
    uniform = call(LogProbQuality(BigramLM(torch.zeros(V, V)), center="entropy"), ids)[0]
    assert uniform == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)


def test_logprob_tokenizer_mismatch_char_offsets():
    """Judge = one token per character, uniform over 262 ids: each policy token gets -len(token) * log 262."""
    judge = BigramLM(torch.zeros(262, 262))
    ids = [encode(TEXT)]
    summed = call(LogProbQuality(judge, tokenizer=char_tokenizer()), ids)[0]
    assert summed == pytest.approx([-n * math.log(262) for n in TOKEN_LENGTHS], abs=1e-4)
    averaged = call(LogProbQuality(judge, tokenizer=char_tokenizer(), placement="mean"), ids)[0]
    assert averaged == pytest.approx([-math.log(262)] * len(TOKEN_LENGTHS), abs=1e-5)
    clipped = call(LogProbQuality(judge, tokenizer=char_tokenizer(), clip_min=-3.0), ids)[0]
    assert clipped == pytest.approx([-3.0 * n for n in TOKEN_LENGTHS], abs=1e-5)


def test_logprob_coarser_judge_split_conserves_total():
    """Judge tokens The, Ġmovie, Ġwas, Ġwonderful, . (uniform over 450 ids, L = log 450) vs the policy's nine.

    " wonderful" (10 characters) covers the policy tokens Ġw (2), o (1), nd (2), er (2), ful (3).
    """
    judge_tok = coarse_tokenizer()
    assert judge_tok.tokenize(TEXT) == ["The", "Ġmovie", "Ġwas", "Ġwonderful", "."]
    judge, L = BigramLM(torch.zeros(len(judge_tok), len(judge_tok))), math.log(len(judge_tok))
    ids = [encode(TEXT)]
    split = call(LogProbQuality(judge, tokenizer=judge_tok), ids)[0]
    assert split == pytest.approx([-L, -L, -L] + [-L * n / 10 for n in (2, 1, 2, 2, 3)] + [-L], abs=1e-5)
    assert sum(split) == pytest.approx(-5 * L, abs=1e-5)  # five judge tokens
    summed = call(LogProbQuality(judge, tokenizer=judge_tok, placement="sum"), ids)[0]
    assert summed == pytest.approx([-L] * 9, abs=1e-5)  # " wonderful" counted once per covered policy token


def _tiny_lm(tokenizer, seed=0):
    from trl_token_ext.testing import build_tiny_causal_lm

    return build_tiny_causal_lm(tokenizer, seed=seed)


def test_logprob_batched_equals_loop_and_conserves_mass_across_tokenizers():
    policy, judge_tok = policy_tokenizer(), char_tokenizer()
    texts = [TEXT, "A cat sat.", "Is this the answer? Yes", "bad"]
    ids = [encode(t) for t in texts] + [[], [policy.eos_token_id]]
    prompts = ["Review:", "Story:", "Q:", "", "x", "y"]
    for judge, tok in ((_tiny_lm(policy), None), (_tiny_lm(judge_tok, seed=1), judge_tok)):
        batched = call(LogProbQuality(judge, tokenizer=tok, batch_size=16), ids, prompts=prompts)
        looped = [
            call(LogProbQuality(judge, tokenizer=tok, batch_size=1), [i], prompts=[p])[0] for i, p in zip(ids, prompts)
        ]
        for a, b in zip(batched, looped):
            assert a == pytest.approx(b, abs=1e-5)
    # Mismatch: the policy-token values add up to the judge's total log-prob of the completion (placement="split"),
    # for a finer (one token per character) and a coarser judge tokenizer.
    for judge_tok in (char_tokenizer(), coarse_tokenizer()):
        _check_total(_tiny_lm(judge_tok, seed=1), judge_tok)


def _check_total(judge, judge_tok):
    for text, prompt in (("A cat sat.", "Story:"), (TEXT, "Review:")):
        values = call(LogProbQuality(judge, tokenizer=judge_tok), [encode(text)], prompts=[prompt])[0]
        p_ids, c_ids = judge_tok(prompt)["input_ids"], judge_tok(text)["input_ids"]
        with torch.no_grad():
            logits = judge(torch.tensor([p_ids + c_ids])).logits[0]
        logp = logits.log_softmax(-1)[len(p_ids) - 1 : -1].gather(-1, torch.tensor(c_ids)[:, None]).sum()
        assert sum(values) == pytest.approx(logp.item(), abs=1e-4)


def test_logprob_edge_cases():
    policy = policy_tokenizer()
    q = _prompt_last_id()
    eos = policy.eos_token_id
    # Empty completion, only special tokens (same tokenizer: EOS is scored; mismatch: no characters -> 0).
    same = call(LogProbQuality(successor_bigram(V)), [[], [eos]])
    assert same == [[], pytest.approx([math.log((3 if eos == q + 1 else 1) / Z)], abs=1e-5)]
    mismatch = call(LogProbQuality(BigramLM(torch.zeros(262, 262)), tokenizer=char_tokenizer()), [[], [eos, eos]])
    assert mismatch == [[], [0.0, 0.0]]
    # Left truncation: context 2 keeps [q+2, q+1]; the dropped token and the context-less one get 0.
    scorer = LogProbQuality(successor_bigram(V), max_length=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = call(scorer, [[q + 1, q + 2, q + 1]])[0]
        call(scorer, [[q + 1, q + 2, q + 1]])
    assert first == pytest.approx([0.0, 0.0, math.log(1 / Z)], abs=1e-5)
    assert sum("truncating from the left" in str(w.message) for w in caught) == 1


def test_logprob_completion_truncated_at_max_length():
    """A completion cut by max_completion_length (no EOS) scores its tokens exactly as in the full completion."""
    policy = policy_tokenizer()
    full = encode(TEXT) + [policy.eos_token_id]
    for judge, tok in ((_tiny_lm(policy), None), (_tiny_lm(char_tokenizer(), seed=1), char_tokenizer())):
        scorer = LogProbQuality(judge, tokenizer=tok)
        whole, cut = call(scorer, [full, full[:4]])
        assert len(cut) == 4 and cut == pytest.approx(whole[:4], abs=1e-5)


def test_logprob_conversational_prompt_uses_chat_template():
    policy = policy_tokenizer()
    assistant = policy.convert_tokens_to_ids("<|assistant|>")
    prompt = [{"role": "user", "content": "Review:"}]
    values = call(LogProbQuality(successor_bigram(V)), [[assistant + 1, assistant + 2]], prompts=[prompt])[0]
    assert values == pytest.approx([math.log(3 / Z)] * 2, abs=1e-5)


def test_logprob_loads_from_path_and_forwards_quantization(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from_path = LogProbQuality(tiny_model_dir)
    from_object = LogProbQuality(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    ids = [encode(TEXT)]
    assert call(from_path, ids)[0] == pytest.approx(call(from_object, ids)[0])
    assert not any(p.requires_grad for p in from_path.model.parameters())
    # A model object is not mutated: an online-trained judge keeps its train mode and its gradients.
    trained = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
    call(LogProbQuality(trained), ids)
    assert trained.training and all(p.requires_grad for p in trained.parameters())

    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        kwargs.pop("quantization_config"), kwargs.pop("device_map")
        return real(path, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    LogProbQuality(tiny_model_dir, model_init_kwargs={"load_in_4bit": True})
    assert seen["quantization_config"].load_in_4bit and seen["quantization_config"].bnb_4bit_quant_type == "nf4"


def test_implicit_prm_with_reference_model_hand_computed():
    q = _prompt_last_id()
    scorer = ImplicitPRMQuality(successor_bigram(V), ref_model=BigramLM(torch.zeros(V, V)), beta=0.5)
    (values,) = call(scorer, [[q + 1, q + 2, q + 1]])
    expected = [0.5 * (math.log(3 / Z) + math.log(V)), 0.5 * (math.log(3 / Z) + math.log(V)), 0.5 * math.log(V / Z)]
    assert values == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="ref_model is required"):
        ImplicitPRMQuality(successor_bigram(V))


def test_implicit_prm_peft_adapter_toggle_keeps_one_base():
    from peft import LoraConfig, get_peft_model

    base = _tiny_lm(policy_tokenizer())
    reference = copy.deepcopy(base)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    scorer = ImplicitPRMQuality(model, beta=0.1)
    assert scorer.ref_model is None
    ids = [encode(TEXT), encode("A cat sat.")]
    values = call(scorer, ids)
    policy_lp = call(LogProbQuality(model), ids)
    ref_lp = call(LogProbQuality(reference), ids)
    for v, a, b in zip(values, policy_lp, ref_lp):
        assert v == pytest.approx([0.1 * (x - y) for x, y in zip(a, b)], abs=1e-5)
    assert any(abs(x) > 1e-4 for x in values[0])


def test_implicit_prm_adapter_folder_loaded_by_path(tiny_model_dir, tmp_path):
    """An adapter folder loaded with from_pretrained (transformers' PEFT integration) toggles the same way."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    model.save_pretrained(tmp_path)
    ids = [encode(TEXT)]
    from_path = call(ImplicitPRMQuality(str(tmp_path), tokenizer=tiny_model_dir, beta=0.1), ids)[0]
    assert from_path == pytest.approx(call(ImplicitPRMQuality(model, beta=0.1), ids)[0], abs=1e-5)
    assert any(abs(x) > 1e-4 for x in from_path)


def test_token_classifier_char_alignment_hand_computed():
    scorer = TokenClassifierQuality(
        CharRuleTagger(char_tokenizer()), "VOWEL", tokenizer=char_tokenizer(), output="logit"
    )
    (values,) = call(scorer, [encode(TEXT)])
    # vowels per token / characters per token: The, ' movie', ' was', ' w', o, nd, er, ful, '.'
    assert values == pytest.approx([1 / 3, 3 / 6, 1 / 4, 0.0, 1.0, 0.0, 1 / 2, 1 / 3, 0.0], abs=1e-6)
    prob = TokenClassifierQuality(CharRuleTagger(char_tokenizer()), "VOWEL", tokenizer=char_tokenizer())
    assert call(prob, [encode("o")])[0] == pytest.approx([math.e / (1 + math.e)], abs=1e-6)
    assert call(prob, [[], [policy_tokenizer().eos_token_id]]) == [[], [0.0]]
    with pytest.raises(ValueError, match=r"unknown label 'POSITIVE'.*\['OTHER', 'VOWEL'\]"):
        TokenClassifierQuality(CharRuleTagger(char_tokenizer()), "POSITIVE")


def test_token_classifier_auto_model_from_path(tmp_path):
    from transformers import Qwen2Config, Qwen2ForTokenClassification

    policy = policy_tokenizer()
    config = Qwen2Config(
        vocab_size=len(policy), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1},
        pad_token_id=policy.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForTokenClassification(config).save_pretrained(tmp_path)
    policy.save_pretrained(tmp_path)
    scorer = TokenClassifierQuality(str(tmp_path), "POS")
    ids = [encode(TEXT), encode("bad")]
    values = call(scorer, ids)
    with torch.no_grad():
        for row, v in zip(ids, values):
            expected = scorer.model(torch.tensor([row])).logits[0].softmax(-1)[:, 1]
            assert v == pytest.approx(expected.tolist(), abs=1e-5)


def test_lexicon_spread_modes_and_files(tmp_path):
    lexicon = {"wonderful": 2.0, "Movie": -1.0}
    ids = [encode(TEXT)]
    assert call(LexiconQuality(lexicon), ids)[0] == pytest.approx([0, -1, 0, 0.4, 0.4, 0.4, 0.4, 0.4, 0])
    assert call(LexiconQuality(lexicon, placement="sum"), ids)[0] == pytest.approx([0, -1, 0, 2, 2, 2, 2, 2, 0])
    assert call(LexiconQuality(lexicon, placement="last"), ids)[0] == pytest.approx([0, -1, 0, 0, 0, 0, 0, 2, 0])
    assert call(LexiconQuality(lexicon, case_sensitive=True), ids)[0] == pytest.approx([0, 0, 0] + [0.4] * 5 + [0])
    (tmp_path / "lex.txt").write_text("movie\t1.5\t0.5\t[1, 2]\nwas\t-0.5\t0.1\t[0]\n", encoding="utf-8")
    assert call(LexiconQuality(tmp_path / "lex.txt"), ids)[0] == pytest.approx([0, 1.5, -0.5, 0, 0, 0, 0, 0, 0])
    (tmp_path / "lex.json").write_text('{"the": 3}', encoding="utf-8")
    assert call(LexiconQuality(str(tmp_path / "lex.json")), ids)[0][0] == pytest.approx(3.0)
    assert call(LexiconQuality(lexicon), [[], [policy_tokenizer().eos_token_id]]) == [[], [0.0]]
    with pytest.raises(ValueError, match="lexicon_quality: lexicon file"):
        LexiconQuality(tmp_path / "missing.txt")


def test_scorers_are_picklable_with_names():
    import pickle

    scorer = LogProbQuality(successor_bigram(V), tokenizer=char_tokenizer(), name="judge")
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.__name__ == "judge"
    assert call(clone, [encode("bad")])[0] == pytest.approx(call(scorer, [encode("bad")])[0])
    assert pickle.loads(pickle.dumps(LexiconQuality({"a": 1}))).__name__ == "lexicon_quality"


def test_lexicon_from_vader():
    pytest.importorskip("vaderSentiment")
    scorer = LexiconQuality.from_vader(placement="last")
    assert scorer.__name__ == "vader_lexicon_quality" and scorer.lexicon["wonderful"] == pytest.approx(2.7)
    assert call(scorer, [encode(TEXT)])[0] == pytest.approx([0, 0, 0, 0, 0, 0, 0, 2.7, 0])


def test_selected_logprobs_chunks_equal_one_pass_and_hand_values():
    from trl_token_ext.scorers._lm import selected_logprobs

    # logits (B=2, L=2, V=3); scored: (0, 1) -> target 2, (1, 0) -> target 0, (1, 1) -> target 1
    logits = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)]], [[math.log(3.0), 0.0, 0.0], [1.0, 2.0, 3.0]]])
    rows, positions, targets = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), torch.tensor([2, 0, 1])
    z = math.exp(1) + math.exp(2) + math.exp(3)
    expected = [math.log(2 / 4), math.log(3 / 5), 2 - math.log(z)]
    probs = [[1 / 4, 1 / 4, 2 / 4], [3 / 5, 1 / 5, 1 / 5], [math.exp(k) / z for k in (1, 2, 3)]]
    entropy = [-sum(p * math.log(p) for p in row) for row in probs]
    for chunk in (1, 2, 1024):
        logp, ent = selected_logprobs(logits, rows, positions, targets, with_entropy=True, chunk=chunk)
        assert logp.tolist() == pytest.approx(expected, abs=1e-6)
        assert ent.tolist() == pytest.approx(entropy, abs=1e-6)
    logp, ent = selected_logprobs(logits.to(torch.bfloat16), rows, positions, targets, chunk=2)
    assert ent is None and logp.dtype == torch.float32
    assert logp.tolist() == pytest.approx(expected, abs=2e-2)


def test_logprob_scorer_through_small_chunks_matches_hand_values(monkeypatch):
    import trl_token_ext.scorers._lm as lm

    monkeypatch.setattr(lm, "LOGPROB_CHUNK", 2)  # 3 scored tokens: two chunks
    q = _prompt_last_id()
    scorer = LogProbQuality(successor_bigram(V), center="entropy")
    (values,) = call(scorer, [[q + 1, q + 2, q + 1]])
    # entropy of the successor bigram's rows: -(3/Z)·log(3/Z) - (V-1)·(1/Z)·log(1/Z)
    h = -(3 / Z) * math.log(3 / Z) - (V - 1) / Z * math.log(1 / Z)
    expected = [math.log(3 / Z) + h, math.log(3 / Z) + h, math.log(1 / Z) + h]
    assert values == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_target_logprobs_equals_log_softmax_gather_values_and_gradients(dtype, atol, chunk):
    from trl_token_ext.scorers._lm import target_logprobs

    generator = torch.Generator().manual_seed(0)
    full = torch.randn(2, 6, 11, generator=generator).to(dtype)
    targets = torch.randint(0, 11, (2, 5), generator=generator)
    weights = torch.randn(2, 5, generator=generator)  # a non-uniform upstream gradient
    # reference: the one-pass expression the PRM used, on a strided slice of the logits as in the PRM
    ref_leaf = full.clone().requires_grad_(True)
    ref = ref_leaf[:, :-1].float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    (ref * weights).sum().backward()
    leaf = full.clone().requires_grad_(True)
    out = target_logprobs(leaf[:, :-1], targets, chunk=chunk)
    (out * weights).sum().backward()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    torch.testing.assert_close(leaf.grad.float(), ref_leaf.grad.float(), atol=atol, rtol=0)
    assert leaf.grad[:, -1].abs().sum() == 0  # the last position is not scored
    with pytest.raises(ValueError, match=r"logits \(B, L, V\) and targets \(B, L\)"):
        target_logprobs(full[0], targets[0])


# --- LogProbQuality without processing_class (issue 13) ----------------------------------------------------------
def test_logprob_quality_without_processing_class_names_the_sample():
    from scorer_fixtures import char_tokenizer, encode, successor_bigram

    from trl_token_ext.scorers import LogProbQuality

    judge = LogProbQuality(successor_bigram(len(char_tokenizer())), tokenizer=char_tokenizer())
    ascii_ids = char_tokenizer()("ab", add_special_tokens=False)["input_ids"]
    assert len(judge(prompts=["x"], completions=["ab"], completion_ids=[ascii_ids])[0]) == 2  # judge ids: fine
    policy_ids = encode(" wonderful wonderful")
    assert max(policy_ids) >= len(char_tokenizer())
    with pytest.raises(ValueError, match=r"logprob_quality: completion_ids of sample 1 hold token id \d+, outside"):
        judge(prompts=["x", "x"], completions=["ab", "w"], completion_ids=[ascii_ids, policy_ids])
