"""Feature absorption (metasae_utils.absorption): SAEBench's own calculator as the reference, a hand-built case with a
known answer, the rule's verdicts and the bad-input errors."""

import random

import pytest
import torch
from sae_bench.evals.absorption.feature_absorption_calculator import FeatureAbsorptionCalculator
from sae_lens import StandardSAE, StandardSAEConfig

from metasae_utils import presets
from metasae_utils.absorption import relate, score, task

D, D_SAE = 16, 40
SUFFIX = task.TEMPLATE.format(word="")


class StubModel:
    """Just enough of a HookedTransformer for SAEBench's calculator: every prompt has the same length and the
    activation at the word's position is the one stored for the prompt's last word."""

    def __init__(self, acts: dict[str, torch.Tensor], hook: str):
        self.acts, self.hook, self.tokenizer = acts, hook, object()

    def to_tokens(self, text):
        return torch.zeros(1, 12, dtype=torch.long)

    def run_with_cache(self, texts, names_filter=None):
        out = torch.zeros(len(texts), 12, D)
        for i, t in enumerate(texts):
            word = t.rsplit("\n", 1)[1][: -len(SUFFIX)]
            out[i, task.TOKEN_POS] = self.acts[word]
        return None, {self.hook: out}


def _sae(seed=0) -> StandardSAE:
    g = torch.Generator().manual_seed(seed)
    probe = torch.zeros(D)
    probe[0] = 1.0
    W = torch.randn(D_SAE, D, generator=g)
    W[:12] = 0.3 * W[:12] + torch.linspace(0.5, 3.0, 12)[:, None] * probe  # latents partly aligned with the probe
    W = W / W.norm(dim=1, keepdim=True)
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=D_SAE))
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
        sae.b_enc.fill_(-0.6)
        sae.b_dec.zero_()
    return sae


def test_word_absorption_equals_saebench_calculator():
    """The per-word arithmetic on given activations equals SAEBench's FeatureAbsorptionCalculator, which runs the
    (stub) model itself; the case covers zero, partial, one and full absorption."""
    sae = _sae()
    g = torch.Generator().manual_seed(1)
    words = [f" w{i}" for i in range(60)]
    acts = {w: torch.relu(torch.randn(D, generator=g)) * 0.7 + 1.5 * torch.rand(1, generator=g) * sae.W_dec[
        int(torch.randint(0, 12, (1,), generator=g))].detach() for w in words}
    probe = torch.zeros(D)
    probe[0] = 2.0
    got_any = set()
    for main in ([0], [11, 10], [3]):
        calc = FeatureAbsorptionCalculator(model=StubModel(acts, "blocks.0.hook_resid_post"), icl_word_list=words,
                                           max_icl_examples=3, base_template=task.TEMPLATE,
                                           word_token_pos=task.TOKEN_POS)
        random.seed(0)
        ref = calc.calculate_absorption(sae, words, probe_direction=probe, main_feature_ids=main, layer=0,
                                        show_progress=False).word_results
        x = torch.stack([acts[w] for w in words])
        ours = score.word_absorption(sae.encode(x), x, probe, sae.W_dec.detach(), main)
        for r, o in zip(ref, ours):
            assert o["absorption_fraction"] == pytest.approx(r.absorption_fraction, abs=1e-6)
            assert o["is_full_absorption"] == r.is_full_absorption
            assert o["top_feature"] == r.top_projection_feature_scores[0].feature_id
            f = r.absorption_fraction
            got_any.add("zero" if f == 0 else "one" if f == 1 else "partial")
            if r.is_full_absorption:
                got_any.add("full")
    assert got_any == {"zero", "partial", "one", "full"}


def test_hand_built_absorption():
    """Probe direction e0; latent 0 (the letter's main latent) = e0, latent 1 (an absorbing child) = 0.6 e0 + 0.8 e1,
    latent 2 = e2 (unrelated)."""
    W = torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0], [0, 0, 1.0]])
    probe = torch.tensor([1.0, 0, 0])
    cases = torch.tensor([[1.0, 0, 0],      # the main latent carries the whole projection: no absorption
                          [0, 2.0, 0],      # only the child fires: full absorption, fraction 1
                          [0.5, 1.0, 0],    # both: fraction 0.6 / (0.6 + 0.5)
                          [0, 0, 3.0]])     # the unrelated latent only
    acts = cases @ W
    got = score.word_absorption(cases, acts, probe, W, [0])
    assert [g["absorption_fraction"] for g in got][:2] == [0.0, 1.0]
    assert got[2]["absorption_fraction"] == pytest.approx(0.6 / 1.1)
    assert [g["is_full_absorption"] for g in got] == [False, True, False, False]
    assert got[1]["absorbers"] == [1] and got[2]["absorbers"] == [1] and got[0]["absorbers"] == []
    assert got[3]["absorption_fraction"] == 0.0 and not got[3]["is_full_absorption"]


def _fake_task(per_letter=6, d=D, seed=0) -> task.Task:
    """26 letters, each a direction plus noise, and SAEBench's probe trained on them."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(26, d, generator=g)
    def make(n, tag):
        words = [f" {c}{tag}{i}" for c in task.LETTERS for i in range(n)]
        y = torch.tensor([task.letter_of(w) for w in words])
        return words, y, dirs[y] + 0.3 * torch.randn(len(words), d, generator=g)
    trw, try_, tra = make(per_letter, "a")
    tew, tey, tea = make(2, "b")
    w, b = task.train_probe(tra, try_, seed)
    return task.Task(trw, try_, tra, tew, tey, tea, w, b)


def test_absorption_runs_saebench_k_sparse_probing():
    """The whole per-SAE pipeline on a small fake task: SAEBench's k-sparse probing runs on our objects and the
    result has the declared shape."""
    t = _fake_task()
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=64))
    got = score.absorption(sae, t)
    assert {"mean_absorption_fraction", "full_absorption_rate", "n_letters", "letters", "absorbing"} <= set(got)
    assert len(got["letters"]) == 26 and 0 <= got["n_letters"] <= 26
    assert all(0 <= int(k) < 64 for k in got["absorbing"])
    if got["n_letters"]:
        assert 0.0 <= got["mean_absorption_fraction"] <= 1.0


def test_f1_metrics_equal_saebench_build_metrics_df():
    """The F1 columns the absorption step reads equal SAEBench's build_metrics_df (which also computes what it does
    not read), and so do the main latents add_feature_splits_to_metrics_df picks from them."""
    from sae_bench.evals.absorption.k_sparse_probing import add_feature_splits_to_metrics_df, build_metrics_df
    t = _fake_task()
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=64))
    raw, meta, ours = score.k_sparse(sae, t)
    ref = build_metrics_df(raw, meta, max_k_value=score.MAX_K)
    add_feature_splits_to_metrics_df(ref, max_k_value=score.MAX_K, f1_jump_threshold=score.F1_JUMP)
    assert list(ref["letter"]) == list(ours["letter"])
    for col in ["f1_probe"] + [f"f1_sparse_sae_{k}" for k in range(1, score.MAX_K + 1)]:
        assert ref[col].tolist() == pytest.approx(ours[col].tolist(), abs=1e-12), col
    assert [list(x) for x in ref["split_feats"]] == [list(x) for x in ours["split_feats"]]


def test_sample_words_splits_within_letters():
    vocab = [f"{c}{i}" for c in task.LETTERS for i in range(7)] + [" " + c.upper() + "x" for c in task.LETTERS]
    train, test = task.sample_words(vocab, 5, seed=0)
    assert {task.letter_of(w) for w in test} == set(range(26)) == {task.letter_of(w) for w in train}
    assert len(train) + len(test) == 26 * 5 and not set(train) & set(test)
    assert task.sample_words(vocab, 5, seed=0) == (train, test)


def test_relate_rule():
    live = torch.ones(100, dtype=torch.bool)
    novel = torch.zeros(100, dtype=torch.bool)
    novel[:30] = True                                  # 30 % of live latents are novel
    strong = relate.pair_counts({str(i): 1 for i in range(0, 40, 2)} | {"50": 2, "60": 1}, live, novel)
    assert strong["n_absorbing"] == 22 and strong["n_absorbing_novel"] == 15
    got = relate.pooled([strong])
    assert got["control"] == pytest.approx(0.3) and relate.verdict(got) == "reproduced"
    few = relate.pair_counts({"1": 1, "2": 1}, live, novel)
    assert relate.verdict(relate.pooled([few])) == "underpowered"
    same = relate.pair_counts({str(i): 1 for i in list(range(6)) + list(range(50, 64))}, live, novel)
    assert relate.verdict(relate.pooled([same])) == "not reproduced"
    row = relate.claim_row([strong])
    assert row["id"] == "absorption_novel" and row["control"]["value"] == pytest.approx(0.3)
    dead = live.clone()
    dead[0] = False
    assert relate.pair_counts({"0": 3}, dead, novel)["n_absorbing_dead"] == 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 words per letter"):
        task.sample_words(["apple", "axe"], 1, 0)
    with pytest.raises(ValueError, match="starting with 'b'"):
        task.sample_words(["apple", "axe"], 2, 0)
    with pytest.raises(ValueError, match="1-D"):
        score.word_absorption(torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), torch.eye(3), [0])
    with pytest.raises(ValueError, match=r"\(n, d_sae\)"):
        score.word_absorption(torch.zeros(2, 3), torch.zeros(1, 3), torch.ones(3), torch.eye(3), [0])
    with pytest.raises(ValueError, match="d_in = 8"):
        score.absorption(StandardSAE(StandardSAEConfig(d_in=8, d_sae=16)), _fake_task(per_letter=2))
    with pytest.raises(ValueError, match="0..9"):
        relate.pair_counts({"10": 1}, torch.ones(10, dtype=torch.bool), torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="different d_in"):
        relate.novel_mask(torch.zeros(4, 3), torch.zeros(4, 5))
    with pytest.raises(presets.ConfigError, match="absorption_words"):
        presets.resolve("ci", absorption_words=1)
    with pytest.raises(presets.ConfigError, match="absorption_kinds"):
        presets.resolve("ci", absorption_kinds=["twin"])


def test_saebench_calculator_on_the_project_model(tmp_path, monkeypatch):
    """SAEBench's calculator runs on the project's model object (SmolLM2 at the ci preset's hook: SAEBench's
    blocks.2.hook_resid_post is blocks.3.hook_resid_pre): our activations of its prompts equal the ones its
    ``run_with_cache`` reads, and our per-word absorption equals its result.  In float32: SAEBench's calculator
    multiplies the model's activations by the probe in the SAE's dtype, so a bf16 model needs the SAE cast to bf16
    (as its run_eval does); the chapter instead scores float32 copies of the activations."""
    from metasae_utils import sources
    from metasae_utils.absorption.task import TEMPLATE, TOKEN_POS, word_activations
    cfg = presets.resolve("ci", dtype="float32")
    model = sources.load_model(cfg)
    words = [" cat", " car", " sun", " dog", " apple", " snake", " short", " tree"]
    g = torch.Generator().manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=model.cfg.d_model, d_sae=64))
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(64, model.cfg.d_model, generator=g), dim=1))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.fill_(-0.5)
    probe = torch.randn(model.cfg.d_model, generator=g)
    calc = FeatureAbsorptionCalculator(model=model, icl_word_list=words, max_icl_examples=4, base_template=TEMPLATE,
                                       word_token_pos=TOKEN_POS)
    random.seed(0)
    prompts = [p.base for p in calc._build_prompts(words)]
    random.seed(0)
    ref = calc.calculate_absorption(sae, words, probe_direction=probe, main_feature_ids=[0, 1], layer=2,
                                    show_progress=False).word_results
    assert [r.prompt for r in ref] == prompts
    ours_acts = word_activations(model, cfg.hook, prompts, batch_size=4)
    theirs = model.run_with_cache(prompts, names_filter=["blocks.2.hook_resid_post"])[1][
        "blocks.2.hook_resid_post"][:, TOKEN_POS, :].float()
    assert torch.allclose(ours_acts, theirs, atol=1e-4, rtol=1e-4)
    ours = score.word_absorption(sae.encode(theirs.to(sae.W_dec.dtype)), theirs, probe, sae.W_dec.detach(), [0, 1])
    for r, o in zip(ref, ours):
        assert o["absorption_fraction"] == pytest.approx(r.absorption_fraction, abs=1e-5)
        assert o["is_full_absorption"] == r.is_full_absorption


def test_sae_key_is_relative_to_the_cache(tmp_cache):
    from metasae_utils.absorption import chapter
    folder = tmp_cache / "saes" / "abc" / "sae"
    folder.mkdir(parents=True)
    assert chapter.sae_key(str(folder)) == "cache:saes/abc/sae"
    assert chapter.sae_key("arch:standard:576:2.2:ed9c") == "arch:standard:576:2.2:ed9c"
