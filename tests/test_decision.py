"""The answer decision, question kinds, paper names and not-stated scoring.

Units run on plain strings and hand-made Paper records (named fakes); the behaviour
tests ask real questions, written here, of the real seed index in extractive mode.
"""
from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag import ask, evidence, extractive
from rag.answer import retrieve
from rag.config import LogisticSettings, load_settings
from rag.decision import (
    ask_match,
    ask_missing,
    ask_near,
    asks_device,
    calibrated,
    count_unstated,
    counted,
    decide,
    identifiers,
    kind_checked,
    lists_asked,
    missing_identifiers,
    name_near,
    names_device,
    names_given,
    probability,
    question_signals,
    subject_names,
    unseen_identifiers,
    unseen_names,
    unwritten_names,
    with_model_yes,
    yes_log_odds,
    yes_signals,
)
from rag.engine import get_engine
from rag.evaluation import evaluate
from rag.evidence import TermWeights, rank_sentences, states_number, values
from rag.names import display_name, name_match, names_paper, short_name, variant_base
from rag.questions import classify, record_field
from rag.types import Paper, Source

REPO = Path(__file__).resolve().parent.parent
SCORE_PY = REPO.parent / "shared" / "eval" / "score.py"


def fake_paper(title: str, abstract: str) -> Paper:
    """A hand-made paper record (a fake: not from the corpus)."""
    return Paper("fake", title, abstract)


@pytest.mark.parametrize("question, multi", [
    ("Which papers speed up diffusion sampling, and how do they differ?", True),
    ("papers on pruning large language models?", True),
    ("How do GPipe, PipeDream and Chimera each fill the pipeline bubble?", True),
    ("How do the corpus's graph transformers compare?", True),
    ("Compare the top-1 accuracy of the original network with its second version.", True),
    ("How does the sparse model compare with dense baselines on ImageNet?", False),
    ("What top-1 accuracy does the tiny model reach on ImageNet?", False),
    ("Which GPU were the consistency models in latent space trained on?", False),
    ("Which paper proposes prototype masks for instance segmentation?", False),
    # Two versions of a work named apart are two papers; one version is one paper.
    ("By how much did the second version of the detector beat the first version?", True),
    ("What does the v2 model add to the backbone?", False),
    # "works" is a plural noun after "which", a verb after a noun.
    ("Which works prune vision transformers?", True),
    ("What pruning method works best for vision transformers?", False),
    # A singular work asked for is one paper, whatever plural follows.
    ("Which approach designs strong convolutional networks analytically?", False),
    ("Which work trains embedding models that can be cut in both width and depth?", False),
    # "What <things> have been proposed?" asks for several, whatever they are called.
    ("Why does training diverge, and what normalization fixes have been proposed?", True),
    ("What surveys of pruning are there?", True),
    ("What learning rate has been used for the largest model?", False),
    # "each method" sets several works side by side; "each model size" may be one paper's.
    ("What has been done to speed up samplers, and what does each method report?", True),
    ("What accuracy does each model size reach on ImageNet?", False),
    # A plural work before a verb that is also a work noun ("papers study") is plural.
    ("Which papers study how to prune attention heads?", True),
    ("papers showing that pruned web data trains a better CLIP - by how much?", True),
    ("Which study measures attention head redundancy?", False),
    # Asked of recent work or the papers as a body.
    ("How do recent detectors handle tiny objects?", True),
    ("What evidence do papers give that distillation helps small models?", True),
    ("What does the collection say about mixed-precision training?", True),
    ("What has been proposed to shrink KV caches?", True),
    # Several things asked of one work: the plural is the object, one work the subject.
    ("Which three datasets was the edge autoencoder evaluated on?", False),
    ("Which frameworks, e.g. vLLM, does the survey on LLM serving introduce?", False),
    ("Which methods does the corpus hold for pruning attention heads?", True),
    # A count of things that are not publications is one work's, wherever it is asked.
    ("Which two public datasets were used to evaluate the compression framework?", False),
    ("In the distillation paper, which two student networks were trained?", False),
    ("Which two papers compare LoRA variants?", True),
    # Opening on one work, the plural after it is that work's subject.
    ("In the study of data-efficient LLaVA-style models, how many samples do they keep?",
     False),
    ("In the papers on LLaVA-style models, how many samples do they keep?", True),
    ("In the deep kernel machines paper, which benchmark datasets were used?", False),
    # Things that are not works, used by one work; used by several papers, several.
    ("Which datasets were used in the framework that learns weights and architecture?",
     False),
    ("Which datasets are used by the papers on pruning?", True),
    # Works in the plural as the subject of "how do".
    ("How do hardware-focused papers make convolutions faster?", True),
    # An order to compare after the question, and "anything here on X", ask for several.
    ("How is speech recognition made to run on phones? Compare the approaches.", True),
    ("anything here on graph pruning? what do they report", True),
    ("Is anything known about the second dataset they compare against?", False),
    # A typed query ending in works, ways or options asked for, works counted or set side
    # by side, and a question opening on works ask for several.
    ("sparse attention for long video papers", True),
    ("ways to make diffusion sampling cheaper?", True),
    ("quantization toolkits for edge devices - options?", True),
    ("Looking for two surveys: one on pruning and one on distillation.", True),
    ("Which optimizer works?", False),
    ("The paper runs two user studies; how many participants took part?", False),
    ("Both the tiny detector and the larger one reach 40 mAP. How do their costs compare?",
     True),
    ("Papers building on recurrent networks for video captioning?", True),
    ("Which model uses two branches, one for magnitude and one for phase?", False),
    ("What did the study find when both the width and the depth grow?", False),
    # A count of things that are not works, opening the question, is one work's, whatever
    # "each" follows; works counted apart are several.
    ("How many member networks are in each ensemble the search finds?", False),
    ("How many layers do the encoder and the decoder of DeiT and ViT each have?", True),
    ("How many models does each paper train?", True),
    # "their" refers back to the one work's plural: no second work.
    ("In the token-pruned vision transformers, what limits their speed-up?", False),
    ("Which detectors report their latency on a phone?", True),
    ("How do the two models differ in their losses?", True),
    # Works named as the subject, joined by "and", are several papers; a name beside a
    # plain noun, or lower case, is not a second work.
    ("What latency gains do DeepSpeed Inference and DeepSpeed-MoE report?", True),
    ("ElasticViT and ShiftNAS both criticize uniform subnet sampling.", True),
    ("What speedup do GPipe and GNNPipe report?", True),
    ("What accuracy do the model and its YOLOv7 baseline reach?", False),
    ("What latency gains do deepspeed inference and deepspeed-moe report?", False),
])
def test_multi_paper_questions_are_recognised(question, multi):
    assert classify(question).multi is multi


@pytest.mark.parametrize("question, facets", [
    ("How do the two pruning papers differ: one that removes heads and one that merges "
     "layers?", ("that removes heads", "that merges layers")),
    ("Which methods speed up sampling - one distilling the teacher, one caching features - "
     "and by how much?", ("distilling the teacher", "caching features")),
    ("Which papers compare large kernels versus stacked small kernels?",
     ("Which papers compare large kernels", "stacked small kernels")),
    ("Which papers prune one layer at a time?", ()),
    ("How do papers make convolutions faster - one on FPGAs for deformable convs, one on GPUs "
     "with a new layout?", ("on FPGAs for deformable convs", "on GPUs with a new layout")),
])
def test_a_multi_paper_question_lists_its_facets(question, facets):
    assert classify(question).facets == facets


@pytest.mark.parametrize("question, identity", [
    ("Which paper clusters retinal neurons by optimising stimuli?", True),
    ("Is there a tool that fuzzes deep-learning compilers?", True),
    ("I recall a normalising-flow paper that inverts large convolutions quickly", True),
    ("method that initialises the predictor from input statistics", True),
    ("What's the approach that pairs a small generator with a retriever?", True),
    ("Which model does the survey recommend for edge devices?", False),  # a detail of it
    ("Which model does the report recommend for edge devices?", False),
    # The noun phrase goes on past the work noun: a detail of the detector.
    ("Which base backbone network does the single-shot detector build on?", False),
    ("Is there a pretrained network that does regression on tiny tables?", True),
    ("Is there an inference engine that runs 2-bit models on phones?", True),
    ("Which engine does the serving system build on?", False),
    ("which technical report trains a dense 135B model on 8,192 NPUs?", True),
    ("Looking for the lightweight bird's-eye-view framework that predicts flow.", True),
    # Described first, then asked for its name.
    ("There's a model that distils a flow model into one step. What's it called?", True),
    ("A detector that decays overlapping boxes' scores: what is its name?", True),
    ("A study blames the accuracy drop on images with several objects. Which paper was that?",
     True),
    ("FPGA engine for deformable convolutions - which paper?", True),
    ("I remember small video LLMs with a two-stream design. Which one?", True),
    ("Which one of the two schedules decays faster, and by how much?", False),
    ("At what model sizes was the gated linear attention Transformer evaluated?", False),
    ("What FID does the diffusion transformer reach on ImageNet?", False),
    ("For the scheme that packs weights into registers, how much faster is it?", False),
])
def test_questions_asking_which_work_it_is_are_recognised(question, identity):
    assert classify(question).identity is identity


@pytest.mark.parametrize("question, quantity, asked", [
    ("How many GPUs were used to train it?", True, "how many GPUs"),
    ("What learning rate was the model trained with?", True, "what learning rate"),
    ("WikiText-103 perplexity of the state space model?", True, "the WikiText-103 perplexity"),
    ("Which dataset was used for pre-training?", False, "which dataset"),
    ("By what factor is the search time cut?", True, "what factor"),
    ("What RMSE does the depth model reach on KITTI?", True, "what RMSE"),
    ("What ADE20K mIoU does the large-kernel ConvNet report?", True, "what ADE20K mIoU"),
    ("What Dice does it get on Kvasir-SEG?", True, "what Dice"),
    ("What inference speed in FPS does the detector reach?", True,
     "what inference speed in FPS"),
    ("What NeRF trusts only depth order in coarse depth maps?", False,
     "what NeRF trusts only depth order in coarse depth maps"),
    ("MosaicBERT pretraining sequence length", True, ""),
    ("What LoRA rank does the tracker use?", True, "what LoRA rank"),
    ("Which low-rank technique is added to the quantizer?", False,
     "which low-rank technique"),
    # A reply reads "does not state the dataset ...", not "what is the dataset ... it".
    ("What is the dataset of code graphs it is trained on called?", False,
     "the dataset of code graphs"),
    # The measure a thing is picked by, or a clause describing it, is not what is asked.
    ("Which pretraining corpus gave the highest BLEU?", False,
     "which pretraining corpus gave the highest BLEU"),
    ("loss function that keeps the error rate low under label noise", False, ""),
    # With no verb between, the measure is what is asked.
    ("What is the highest accuracy reported?", True, "the highest accuracy reported"),
    ("Which batch size works best?", True, "which batch size works best"),
])
def test_what_a_question_asks_for(question, quantity, asked):
    kind = classify(question)
    assert kind.wants_number is quantity and kind.asked == asked


def test_the_direct_question_names_what_is_asked_not_an_embedded_clause():
    # "measures how well ..." describes the work; "how much accuracy does it keep" asks.
    kind = classify("For the quantizer that measures how well data fills the space, how much "
                    "accuracy does it keep with 4-bit weights?")
    assert kind.asked == "how much accuracy"
    # With no direct question, the first clause still names what is asked.
    assert classify("ViT trained on many resolutions - what top-1 at 224px?").asked == \
        "what top-1 at 224px"


def test_a_number_asked_for_in_a_later_part_is_wanted_too():
    kind = classify("Which model did the distillation use, and what FID did it get?")
    assert kind.asked == "which model" and kind.wants_number
    assert not classify("Which dataset was used for pre-training?").wants_number


def test_a_variant_of_a_named_family_names_the_family_paper():
    paper = fake_paper("EfficientFormer: Vision Transformers at Speed", "We propose it.")
    assert name_match({"EfficientFormer"}, paper) == 0
    assert name_match({"EfficientFormer-L7"}, paper) == 2
    assert name_match({"EfficientNet-B0"}, paper) is None
    assert name_match({"YOLACT"}, fake_paper("YOLACT++: Better Segmentation", "x.")) == 1
    assert variant_base("DiT-XL/2") == "DiT" and variant_base("Res2Net-50") == "Res2Net"


def test_a_question_naming_a_variant_puts_the_family_paper_first(seed_settings):
    # A common name beside it ("ImageNet", "ResNet-50") must not drown the lookup.
    question = "What ImageNet top-1 error does Res2Net-101 get compared with ResNet-50?"
    engine = get_engine(seed_settings)
    ret = retrieve(engine, question, classify(question))
    assert short_name(ret.sources[0].paper) == "Res2Net"
    assert [s.n for s in ret.sources] == list(range(1, len(ret.sources) + 1))


def test_short_names_come_from_the_title_head_or_an_introduced_name():
    assert short_name(fake_paper("DSVT: Dynamic Sparse Voxel Transformer", "x.")) == "DSVT"
    intro = fake_paper("Understanding Dynamics", "We propose DirectPred, a simple method.")
    assert short_name(intro) == "DirectPred"
    assert display_name(intro) == "DirectPred (Understanding Dynamics)"
    spelled = fake_paper("Fully Convolutional SR", "We propose a Shift-Conv-based Network "
                         "(SCNet) that uses optimal transport (OT) losses.")
    assert short_name(spelled) == "SCNet"
    assert short_name(fake_paper("A Study of Things", "We employ optimal transport (OT).")) is None
    beside = fake_paper("Geometry-Aware Adaptation", "Our proposed approach, Loki, gains 29%.")
    assert short_name(beside) == "Loki"
    # A name of several capitalised words is kept whole, not cut to its first word.
    words = fake_paper("The Curse of Depth", "We propose LayerNorm Scaling, which scales it.")
    assert short_name(words) == "LayerNorm Scaling"
    assert short_name(fake_paper("A", "We propose Loki. Then we test it.")) == "Loki"
    # A name another paper gave is not this one's.
    cited = fake_paper("What Makes It Work", "Recently, Gu et al. [2021] proposed a model "
                       "called S4. We then build a simple model called SGConv.")
    assert short_name(cited) == "SGConv"
    own = fake_paper("A", "Unlike prior work, we build a model called Lumo. It is fast.")
    assert short_name(own) == "Lumo"
    assert short_name(fake_paper("A Study", "Our method, which is simple, gains 2%.")) is None
    assert names_paper("SCNet [1] reaches 30 dB.", spelled)
    assert not names_paper("It reaches 30 dB [1].", spelled)


def test_a_bare_how_much_is_matched_by_the_whole_question():
    # "How much" names no quantity: the question's own words find the stating sentence.
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("LowBit", "We study quantization. It cuts memory by 3.5x on GPUs.")
    question = "How much does the low-bit quantizer cut memory?"
    assert ask_match(classify(question), question, paper, weights) > 0
    unrelated = "How much does the low-bit quantizer raise the learning rate?"
    assert ask_match(classify(unrelated), unrelated, paper, weights) < ask_match(
        classify(question), question, paper, weights)


def test_how_many_asks_for_the_thing_counted_and_no_match_is_its_own_signal():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "How many denoising steps does the distilled model need?"
    kind = classify(question)

    def signals(abstract: str) -> dict[str, float]:
        source = Source(1, fake_paper("One Step SR", abstract), 1.0, 0.6, 1.0)
        return question_signals(question, question, [source], 0.6, weights, kind)

    # "many" only asks for an amount: "1 denoising step" matches all that is asked.
    stated = signals("We distill a super-resolution model. It needs 1 denoising step.")
    assert stated["ask_match"] == 1.0 and stated["ask_unmatched"] == 0.0
    # No sentence writing a value matches: unmatched, however well the topic is covered.
    silent = signals("We distill a super-resolution model with few denoising steps.")
    assert silent["ask_match"] == 0.0 and silent["ask_unmatched"] == 1.0


def test_a_measure_is_matched_by_the_name_an_abstract_gives_it():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("ParamNet", "We add parameters, not FLOPs. "
                       "ParamNet-600M reaches 81.6% accuracy, above Swin (80.9%).")
    question = "What top-1 does the 600M-FLOPs variant reach?"
    assert ask_match(classify(question), question, paper, weights) > 0
    speed = fake_paper("ScaleLong", "Scaling skip connections yields about 1.5x training "
                       "acceleration.")
    question = "What speedup does scaling the skip connections give?"
    assert ask_match(classify(question), question, speed, weights) > 0
    ternary = fake_paper("1.58-bit", "Ternary weights give a 7.7x reduction.")
    question = "How much smaller is the model?"
    assert ask_match(classify(question), question, ternary, weights) > 0
    # A measure with no equivalent in the abstract is still unmatched.
    question = "What perplexity does the 600M-FLOPs variant reach?"
    assert ask_match(classify(question), question, paper, weights) == 0.0


def test_a_number_asked_for_is_matched_only_by_sentences_writing_a_new_value():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("Giant ViT", "We train a 22B-parameter vision transformer on chips. "
                       "The vision transformer of 22B parameters transfers well.")
    # The only number the abstract writes is the question's own: no sentence states it.
    question = "How many chips trained the 22B-parameter vision transformer?"
    assert ask_match(classify(question), question, paper, weights) == 0.0
    stated = fake_paper("Giant ViT", "We train a 22B-parameter vision transformer on 2048 "
                        "chips.")
    assert ask_match(classify(question), question, stated, weights) > 0
    # A number asked in a later part counts as asked ("..., and how many chips?"), but the
    # main ask, which dataset, wants a name (a size, "22B", is none): the kind check reads
    # the number part on its own.
    later = "Which dataset trained the 22B-parameter vision transformer, and on how many chips?"
    kind = classify(later)
    assert kind.wants_number and kind.asks_name and kind.number_ask == "many chips"
    assert ask_match(kind, later, paper, weights) == 0.0
    assert ask_match(kind, later, stated, weights) == 0.0
    named = fake_paper("Giant ViT", "We train a 22B-parameter vision transformer on JFT-4B.")
    assert ask_match(kind, later, named, weights) > 0
    # "and how many" inside the main ask asks a number too.
    inside = classify("Which pretraining corpus and how many tokens were the models trained on?")
    assert inside.wants_number and inside.asks_name and inside.number_ask == "how many tokens"
    # What is asked in place of a measure names no number: the part asks for a thing.
    instead = classify("What does the surrogate predict instead of validation error, and what "
                       "dataset were the experiments on?")
    assert not instead.wants_number and instead.wants_name
    assert classify("What does the surrogate predict, and what validation error?").wants_number


def test_which_thing_asked_for_is_matched_only_by_sentences_naming_a_new_one():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "Which vision-language Transformer was the low-rank pre-training applied to?"
    assert classify(question).wants_name
    vague = fake_paper("Low-rank", "We apply low-rank pre-training to a vision-language "
                       "Transformer and keep its accuracy.")
    assert ask_match(classify(question), question, vague, weights) == 0.0
    named = fake_paper("Low-rank", "We apply low-rank pre-training to the vision-language "
                       "Transformer BLIP-2 and keep its accuracy.")
    assert ask_match(classify(question), question, named, weights) > 0
    # A number asked for is not a name asked for.
    assert not classify("Which learning rate was used?").wants_name


def test_a_value_asked_for_must_stand_next_to_the_asked_words():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "How many GPUs was the model trained on?"
    kind = classify(question)
    near = fake_paper("Big model", "The model was trained on 1024 GPUs in two weeks.")
    far = fake_paper("Big model", "Training the model on GPUs with our new scheduler and a "
                     "careful choice of kernels and data layout is 3.2x faster than before.")
    assert ask_near(kind, question, near, weights) == 1.0
    # The same words and a number in one sentence, but the number is of something else.
    assert ask_near(kind, question, far, weights) < ask_near(kind, question, near, weights)
    assert ask_match(kind, question, far, weights) == 1.0  # the sentence-wide match says yes
    # The question's own number answers nothing; a question asking no number scores 0.
    own = fake_paper("Big model", "The 7B model was trained on GPUs.")
    assert ask_near(classify("How many GPUs trained the 7B model?"), "How many GPUs trained "
                    "the 7B model?", own, weights) == 0.0
    which = "Which optimizer trained the model?"
    assert ask_near(classify(which), which, near, weights) == 0.0
    # A value inside the question's name ("JetMoE-8B") is the question's own too.
    sized = fake_paper("JetMoE", "JetMoE-8B has 8B parameters and many experts per layer.")
    experts = "How many experts per layer does JetMoE-8B have?"
    assert ask_near(classify(experts), experts, sized, weights) == 0.0
    assert ask_match(classify(experts), experts, sized, weights) == 0.0


def test_a_name_asked_for_with_a_number_is_matched_by_a_sentence_naming_one():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "What dataset were the experiments on, and how many GPUs did they use?"
    kind = classify(question)
    assert kind.asks_name and not kind.wants_name  # another part may ask a number
    named = fake_paper("NAS", "We demonstrate with experiments on the CIFAR-10 dataset.")
    vague = fake_paper("NAS", "We demonstrate with experiments on a large public dataset.")
    assert ask_match(kind, question, named, weights) > 0
    assert ask_match(kind, question, vague, weights) == 0.0


def test_asked_which_device_only_a_device_name_answers():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "Which GPU were the speedups measured on?"
    kind = classify(question)
    assert asks_device(kind) and not asks_device(classify("Which optimizer was used?"))
    vague = fake_paper("Fast kernels", "The speedups were measured with Triton on one GPU.")
    named = fake_paper("Fast kernels", "The speedups were measured on an NVIDIA H100 GPU.")
    assert ask_match(kind, question, vague, weights) == 0.0
    assert ask_match(kind, question, named, weights) > 0
    for device in ("8xA100 GPUs", "two RTX 4090s", "4timesRTX 3090", "TPU v3", "TPUv4",
                   "a Jetson Orin", "an NVIDIA T4", "K80"):
        assert names_device(device), device
    # Not a device: a model's name or size with digits, an initialisation, a plain GPU.
    for other in ("GPT4", "ViT-B16", "ViT-L/14", "Xavier initialisation", "a single GPU",
                  "Pixel-level labels"):
        assert not names_device(other), other
    # The local name check: a name that is not a device does not answer it.
    paper = fake_paper("Fast kernels", "Written in Triton, on an H100 they are 50x faster.")
    assert names_given("On an H100 [1].", question, [paper], device=True)
    assert not names_given("In Triton [1].", question, [paper], device=True)
    assert names_given("In Triton [1].", question, [paper])


def test_a_comparative_asked_is_stated_by_a_relative_value():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "How much faster was training on the ETTh1 data?"
    kind = classify(question)
    relative = fake_paper("SpaceTime", "Our model speeds up training on ETTh1 by 73%.")
    assert ask_match(kind, question, relative, weights) > 0
    assert ask_missing(kind, question, relative, weights) < 1.0
    # A factor in words is one too.
    for factor in ("twice as fast", "three times faster", "thrice as fast"):
        worded = fake_paper("SpaceTime", f"Training on ETTh1 is {factor}.")
        assert ask_match(kind, question, worded, weights) > 0, factor
    # A value that is no change ("on 8 GPUs") does not say how much faster.
    absolute = fake_paper("SpaceTime", "Our model speeds up training on ETTh1 on 8 GPUs.")
    assert ask_match(kind, question, absolute, weights) == 0.0
    # Nor does a relative value answer a measure that is no comparative.
    question = "What perplexity does it reach on ETTh1?"
    assert ask_match(classify(question), question, relative, weights) == 0.0


def test_the_kind_check_asks_for_a_value_within_a_few_words_of_what_is_asked():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "How many GPUs was the model trained on?"
    kind = classify(question)

    def kind_unmatched(abstract: str) -> float:
        source = Source(1, fake_paper("Big model", abstract), 1.0, 0.6, 1.0)
        return question_signals(question, question, [source], 0.6, weights,
                                kind)["kind_unmatched"]

    # A value in the sentence, but KIND_CHECK_WINDOW words and more from "GPUs".
    far = ("Training the model on GPUs with our new scheduler, a careful choice of kernels "
           "and a better data layout, we find it is 3.2x faster.")
    assert kind_unmatched(far) == 1.0
    assert kind_unmatched("The model was trained on 1024 GPUs in two weeks.") == 0.0
    assert kind_unmatched("The model was trained on GPUs for weeks.") == 1.0  # no value


def test_a_count_is_stated_only_by_a_value_counting_the_asked_thing():
    question = "How many GPUs and how many days did pretraining take?"
    kind = classify(question)
    assert counted(kind, question) == [{"gpu"}, {"day"}]

    def unstated(abstract: str) -> float:
        return count_unstated(kind, question, fake_paper("Big model", abstract))

    assert unstated("We pretrain on 1024 A100 GPUs for 21 days.") == 0.0
    # Days counted, GPUs not: "on A100 GPUs" names them; 2.5x counts nothing.
    assert unstated("We pretrain on A100 GPUs for 21 days, 2.5x faster.") == 1.0
    assert unstated("Pretraining on 64 nodes takes days.") == 1.0
    # A difference is no count ("how many fewer", "how many times"), nor a plain "many".
    for other in ("How many fewer epochs does it need?", "How many times faster is it?",
                  "Which system batches many concurrent requests?"):
        assert counted(classify(other), other) == []
    # "how many CWE types": the CWEs are counted; "params" asks for parameters.
    for q, abstract in (("How many CWE types does the dataset span?", "It spans 150 CWEs."),
                        ("How many params does it have?", "It has 64M parameters.")):
        assert count_unstated(classify(q), q, fake_paper("Data", abstract)) == 0.0


def test_a_name_answers_which_thing_only_near_what_is_asked():
    question = "Which three image-classification datasets was the framework evaluated on?"
    kind = classify(question)

    def near(abstract: str) -> bool:
        return name_near(kind, question, fake_paper("Edge inference", abstract))

    assert near("We evaluate on CIFAR-10, SVHN and MNIST image-classification datasets.")
    # Names of other things only: the board and the cloud, not a dataset.
    assert not near("Results on three popular datasets show lower latency and energy use "
                    "across all of our evaluation runs on a Raspberry Pi 4.")
    # Hardware, a link and the paper's own title words name no solver.
    solver = "Which off-the-shelf mathematical programming solver does MAD use?"
    paper = fake_paper("Mathematical Architecture Design",
                       "A framework termed Mathematical Architecture Design (MAD) is proposed. "
                       "It is solved by off-the-shelf MP solvers on CPUs; see github.com/x/MAD.")
    assert not name_near(classify(solver), solver, paper)
    assert name_near(classify(solver), solver, fake_paper(
        "Mathematical Architecture Design", "It is solved by the Gurobi solver in seconds."))
    # Asked the name of a dataset, a name in a clause on the subject does not answer.
    data = "What is the name of the multilingual dataset that F5-TTS is trained on?"
    assert classify(data).asks_name
    assert not name_near(classify(data), data, fake_paper(
        "F5-TTS", "Trained on a public multilingual dataset, F5-TTS shows highly natural and "
        "expressive zero-shot ability, and it clearly beats the E2 TTS baseline."))
    # A name holding the asked word answers ("Adam-atan2" for "which Adam variant").
    variant = "Which Adam variant do the authors propose?"
    assert name_near(classify(variant), variant,
                     fake_paper("Optimizers", "We propose Adam-atan2, which needs no epsilon."))


def test_an_uncounted_count_is_not_stated_with_or_without_the_models_yes():
    cfg = load_settings().decision
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "How many experts per layer does the mixture-of-experts model use?"
    kind = classify(question)
    source = Source(1, fake_paper("A mixture-of-experts model",
                                  "The mixture-of-experts model routes each token to experts "
                                  "in every layer, reaching 71.2% accuracy."), 1.0, 0.7, 9.0)
    v = decide(cfg, question, question, [source], 0.7, weights, kind)
    assert v.signals["count_unstated"] == 1.0 and v.stated == 0.0 and not v.unsure_stated
    assert with_model_yes(cfg, v, 0.99, kind).stated == 0.0
    # A question asking which paper is not asked a count of it.
    which = "Which paper counts how many experts per layer a model needs?"
    assert decide(cfg, which, which, [source], 0.7, weights, classify(which)).stated == 1.0


def test_a_compound_of_indexed_words_is_not_unseen():
    # A fake vocabulary: "moe" and "parameter" are indexed, "non-moe" and "huawei" are not.
    weights = TermWeights({"moe": 0, "parameter": 1, "model": 2, "non": 3}, [3, 5, 4, 2], 10)
    sig = lambda q: question_signals(  # noqa: E731
        q, q, [Source(1, fake_paper("A model", "A model."), 0.5, 0.5, 0.5, [])], 0.5,
        weights, classify(q))["unseen"]
    assert sig("non-MoE parameter model") == 0.0  # its parts are indexed
    assert sig("Huawei model") > 0.0


def test_a_name_no_indexed_chunk_holds_is_unseen():
    weights = TermWeights({"yolov4": 0, "coco": 1, "ap": 2}, [3, 5, 4], 10)  # a fake vocabulary
    assert unseen_identifiers("YOLOv7 COCO AP on a V100?", weights)
    assert not unseen_identifiers("What AP does YOLOv4 reach on COCO?", weights)
    # Plain words are not names: only identifiers count.
    assert not unseen_identifiers("what does the unheardof detector reach?", weights)


def test_a_work_asked_about_that_no_indexed_chunk_names_is_unseen():
    weights = TermWeights({"yolov4": 0, "coco": 1, "ap": 2, "llms": 3}, [3, 5, 4, 2], 10)  # a fake
    assert unseen_names("YOLOv7 COCO AP and FPS on a V100?", weights) == ["YOLOv7"]
    # A name the index holds in its plural, what the question compares against, and an
    # acronym an abstract may spell out are not works the index never names.
    assert unseen_names("What AP does YOLOv4 reach on COCO?", weights) == []
    assert unseen_names("How much faster than YOLOv7 is YOLOv4 on COCO?", weights) == []
    assert unseen_names("Which LLM is best on COCO captions?", weights) == []
    assert unseen_names("Which detector decays scores by IoU with the top box?", weights) == []
    assert unseen_names("What does ToMe-style merging give an LLM?", weights) == ["ToMe"]
    # Written with a version ("MoCov2"), or its letters and number apart ("CoRe 50").
    written = TermWeights({"mocov2": 0, "core": 1, "50": 2}, [3, 5, 4], 10)  # a fake
    assert unseen_names("Does MoCo help on CoRe50?", written) == []
    assert unseen_names("Does SimCLRv9 help on CoRe50?", written) == ["SimCLRv9"]
    assert unseen_names("Does MoCov3 help?", written) == ["MoCov3"]
    paper = fake_paper("Pathology pretraining", "ResNet50 pretrained with MoCov2 on TCGA.")
    assert missing_identifiers("Is MoCo on TCGA better?", paper, weights) == 0.0


def test_a_compound_counts_by_its_name_and_a_value_is_no_name():
    weights = TermWeights({"gru": 0, "lora": 1, "ln": 2, "gpu": 3}, [3, 5, 4, 6], 10)  # a fake
    # "style", "tune", "640px" and "65B" are in no chunk, yet they name nothing.
    assert not unseen_identifiers("How fast are GRU-style kernels at 640px?", weights)
    assert not unseen_identifiers("Can a 65B model LoRA-tune on one GPU with Pre-LN?", weights)
    assert unseen_identifiers("How fast are YOLOv8-style kernels?", weights)


def test_a_value_no_source_and_not_the_question_writes_is_invented():
    from rag.generation import invented_values

    paper = fake_paper("NeuRI", "NeuRI finds 100 new bugs for PyTorch and TensorFlow in four "
                       "months, with 81 already fixed or confirmed.")
    question = "Of the 100 new bugs NeuRI found, how many were in PyTorch?"
    assert invented_values("81 were in PyTorch and 19 in TensorFlow [1].", question,
                           [paper]) == ["19"]
    # The paper's values (as words too), the question's, and the citation markers: none.
    assert not invented_values("81 of them were fixed in four months [1].", question, [paper])
    assert not invented_values("NeuRI found 100 bugs [1][2].", question, [paper])
    assert invented_values("It found 100 bugs in 4 months [1].", question, [paper]) == []
    assert invented_values("It fixed 81.0% of them [1].", question, []) == ["81"]
    # A count in words is the model's reading of its sources, not a value it states.
    assert not invented_values("It found bugs in two frameworks [1].", question, [paper])


def test_not_stated_claims_nothing_of_papers_it_did_not_read_for_the_detail():
    from rag.prompts import not_stated_text

    # Only the asked-about paper's abstract was read for the detail (issue 11's form).
    assert not_stated_text("SReT", 1, "the learning rate") == (
        "The abstract of SReT [1] does not state the learning rate; the quote below is what "
        "it does say.")


def test_a_value_only_another_paper_writes_is_borrowed_for_the_named_work():
    from rag.generation import borrowed_values

    sret = fake_paper("SReT: Sliced Recursive Transformer", "Recursion gains about 2% on "
                      "ImageNet-1K with 13~15M parameters.")
    other = fake_paper("Inception Transformer", "iFormer-S hits 83.4% top-1 on ImageNet-1K.")
    question = "What ImageNet-1K top-1 accuracy does the best SReT model reach?"
    answer = "The best SReT model reaches 83.4% top-1 [1][2]."
    assert borrowed_values(answer, question, [sret, other]) == ["83.4"]
    # A value of the named work's own paper, no other paper, or no named one: not borrowed.
    assert not borrowed_values("SReT gains 2% and reaches 83.4% [1][2].", question, [sret, other])
    assert not borrowed_values(answer, question, [sret])
    assert not borrowed_values(answer, "What top-1 does iFormer-S reach?", [sret, other])
    # The question's own values ("ImageNet-1K" gives 1) are not the answer's.
    assert not borrowed_values("It was trained on ImageNet-1K [2].", question, [sret, other])


def test_an_acronym_the_paper_spells_out_is_not_missing():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("Streaming Conformers", "A model for automatic speech recognition.")
    assert missing_identifiers("Which streaming ASR model limits look-ahead?", paper,
                               weights) == 0.0
    assert missing_identifiers("Which streaming TTS model limits look-ahead?", paper,
                               weights) == 1.0


def test_a_work_the_question_names_that_no_cited_paper_writes_is_unwritten():
    paper = fake_paper("Scaled-YOLOv4", "YOLOv4-large reaches 55.5% AP on COCO at 16 FPS on V100.")
    question = "YOLOv7 COCO AP and FPS on a V100?"
    assert unwritten_names(question, "YOLOv7 reaches 55.5% AP [1].", [paper]) == ["YOLOv7"]
    # Not written in the answer, written by the paper, or not a work's name: nothing.
    assert not unwritten_names(question, "It reaches 55.5% AP [1].", [paper])
    assert not unwritten_names("YOLOv4 COCO AP on a V100?", "YOLOv4 reaches 55.5% AP [1].", [paper])
    assert not unwritten_names("What LLM reaches 55.5 AP?", "The LLM reaches 55.5 AP [1].", [paper])
    # A work the question compares against is not the one it asks about.
    assert not unwritten_names("How much faster than YOLOv7 is YOLOv4?",
                               "YOLOv4 is faster than YOLOv7 [1].", [paper])


def test_an_answer_names_a_thing_only_with_a_name_its_sources_write():
    paper = fake_paper("TinyViT: Fast Pretraining Distillation", "The sparsified logits of "
                       "the CLIP-ViT-L/14 teacher (300M parameters) are stored on disk.")
    question = "Which teacher model produces the logits TinyViT stores?"
    assert names_given("The teacher is CLIP-ViT-L/14 [1].", question, [paper])
    # No name, the question's own or its initials, one the sources never write, a value:
    # nothing named.
    assert not names_given("The large teacher models [1].", question, [paper])
    assert not names_given("The teacher of TinyViT [1].", question, [paper])
    # A name may open the answer's sentence; a word that only opens the paper's does not
    # name anything.
    aaren = fake_paper("Attention as an RNN", "Experiments show it. We introduce Aaren.")
    assert names_given("Aaren does [1].", "Which module is trained in parallel?", [aaren])
    assert not names_given("Experiments show it [1].", "Which module is trained?", [aaren])
    guided = fake_paper("Guided", "A large VLM curates the data.")
    assert names_given("A large VLM [1].", "Which model curates the data?", [guided])
    assert not names_given("A large VLM [1].", "Which vision-language model curates the data?",
                           [guided])
    assert not names_given("The teacher is BERT-Large [1].", question, [paper])
    assert not names_given("The teacher has 300M parameters [1].", question, [paper])
    # The question's own name in another plural names nothing.
    kernels = fake_paper("Fast RNN kernels", "Our kernels scale to 96 GPUs; on an A100 they "
                         "are 50x faster.")
    gpu = "Which GPU were the speedups measured on?"
    assert not names_given("On a system of 96 GPUs [1].", gpu, [kernels])
    assert names_given("On an A100 [1].", gpu, [kernels])


def test_a_name_the_question_compares_against_is_not_its_subject():
    assert subject_names("How much faster is ResNet-RS than EfficientNet, and does it beat "
                          "YOLOv4 or DeiT-S on COCO?") == {"ResNet-RS", "COCO"}


def test_a_name_the_paper_writes_in_the_plural_is_not_missing():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("FlashRNN", "Traditional RNNs like LSTMs and GRUs run fast in CUDA.")
    assert missing_identifiers("How fast are LSTM kernels in CUDA?", paper, weights) == 0.0
    assert missing_identifiers("How fast are LSTM kernels in JAX?", paper, weights) == 0.5


def test_an_acronym_the_abstract_writes_matches_the_words_asked():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("F5", "Our design achieves an inference RTF of 0.15 on one GPU.")
    asked = "What real-time factor is reported?"
    assert ask_match(classify(asked), asked, paper, weights) == 1.0
    assert ask_missing(classify(asked), asked, paper, weights) == 0.0
    other = "What token frequency is reported?"  # no acronym of the abstract spells it
    assert ask_match(classify(other), other, paper, weights) == 0.0


def test_asked_words_the_abstract_never_mentions_count_as_missing():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("MX Formats", "We study microscaling formats for training. "
                       "Blocks of 32 values share one scale, within 1% of FP32 accuracy.")
    stated = "What block size do the microscaling formats use?"
    # "block" is there; "size" and the name it also stands for, "parameters", are not.
    assert ask_missing(classify(stated), stated, paper, weights) == pytest.approx(2 / 3)
    lacking = "What learning rate schedule do the microscaling formats use?"
    assert ask_missing(classify(lacking), lacking, paper, weights) == 1.0
    # Words for the paper itself name no detail: only "shares ... scale" is asked.
    which = "Which method shares one scale per block?"
    assert ask_missing(classify(which), which, paper, weights) < 0.5


def test_words_match_by_their_stems():
    from rag.evidence import coverage

    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("Image Prior", "Restoration of corrupted images by an untrained "
                       "generator network, with no learning.")
    assert coverage("restore images with untrained generators", paper, weights) == 1.0
    assert coverage("restore images with trained discriminators", paper, weights) == 0.5
    # A plural is still one word ("GPUs" finds "GPU"), as before stems.
    gpus = fake_paper("Scale", "Trained on many GPU nodes in a day.")
    question = "How many GPUs did the training take?"
    assert ask_missing(classify(question), question, gpus, weights) == 0.0
    # "many" asks for an amount, it is not an asked word: "TPUs" alone is, and missing.
    other = "How many TPUs did the training take?"
    assert ask_missing(classify(other), other, gpus, weights) == 1.0


def test_values_are_the_numbers_a_text_writes_exactly():
    assert values("81.60% [2] on 1,024 GPUs at 0.6G FLOPs in one step") == {
        Decimal("81.6"), Decimal("1024"), Decimal("0.6"), Decimal("1")}
    assert values("YOLOv7 and ResNet-50 at 512x512") == {Decimal("512")}
    assert values("a score of 1.0000000000000001") != values("a score of 1")
    # A superscript is part of a name ("S^2"), not a value.
    assert values("S^2 reaches 71.5 on V*") == {Decimal("71.5")}
    # A setting is not a count; a number in words is.
    assert values("zero-shot and one-shot transfer with two heads") == {Decimal("2")}
    assert values("twice as fast, thrice as large") == {Decimal("2"), Decimal("3")}


def test_a_number_is_a_number_not_a_name_with_digits():
    assert states_number("It trains on 1024 GPUs.") and states_number("FID 3.94 at 256.")
    assert states_number("a 4.5x speed-up") and states_number("within 1% of FP32")
    assert states_number("Twice as fast as the baseline.")
    assert not states_number("We evaluate on ImageNet-1K with YOLOv7 at 224x224.")


def test_identifiers_are_the_names_a_question_gives():
    assert identifiers("Does the Lion optimizer beat AdamW on ImageNet?") == {
        "Lion", "AdamW", "ImageNet"}
    assert identifiers("how fast is it at 512x512?") == {"512x512"}
    # A sentence-initial word is a name only with a digit or an inner capital.
    assert identifiers("YOLOv7 COCO AP on a V100?") == {"YOLOv7", "COCO", "AP", "V100"}
    assert identifiers("Which paper trains on ImageNet?") == {"ImageNet"}


def test_the_model_check_reads_none_only_as_the_opening_word():
    from rag.generation import _NOTHING

    for reply in ("NONE", "[1] NONE", " none.", "None of the sources gives it."):
        assert _NOTHING.match(reply), reply
    for reply in ("4.62% error [1]", "NONEXISTENT", "16 GPUs, none idle"):
        assert not _NOTHING.match(reply), reply


def test_probability_and_calibration_are_monotone_and_centred_on_the_threshold():
    model = LogisticSettings(bias=-1.0, weights={"dense": 4.0}, threshold=0.3)
    ps = [probability(model, {"dense": x / 10}) for x in range(11)]
    assert ps == sorted(ps) and all(0 < p < 1 for p in ps)
    assert calibrated(0.3, model) == pytest.approx(0.5)
    assert calibrated(0.1, model) < 0.5 < calibrated(0.4, model)


def test_the_config_holds_the_fit_of_bench_fit_decision():
    fit = json.loads((REPO / "bench" / "results" / "decision_fit.json").read_text())["all"]
    cfg = load_settings().decision
    for name in ("covered", "stated", "paper", "covered_yes", "stated_yes"):
        model = getattr(cfg, name)
        assert model.bias == pytest.approx(fit[name]["bias"], abs=1e-4)
        assert model.threshold == pytest.approx(fit[name]["threshold"], abs=1e-4)
        assert model.weights == pytest.approx(fit[name]["weights"], abs=1e-4)
        assert all(math.isfinite(w) for w in model.weights.values())
    assert cfg.multi_paper_threshold == pytest.approx(fit["multi_paper_threshold"], abs=1e-4)
    cut = json.loads((REPO / "bench" / "results" / "number_check_fit.json").read_text())["all"]
    assert cfg.number_check_below == pytest.approx(cut["number_check_below"], abs=1e-4)
    assert cfg.name_check_below == pytest.approx(cut["name_check_below"], abs=1e-4)


def test_the_sentence_priors_are_the_fit_of_bench_fit_sentences():
    fit = json.loads((REPO / "bench" / "results" / "sentence_fit.json").read_text())["all"]
    assert evidence.LEAD_PENALTY == fit["LEAD_PENALTY"]
    assert extractive.MULTI_SENTENCES == fit["MULTI_SENTENCES"]
    assert extractive.MULTI_DETAIL == fit["MULTI_DETAIL"]


def test_a_lead_penalty_makes_the_opening_sentence_yield_to_an_equal_later_one(monkeypatch):
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    paper = fake_paper("Pruning", "Pruning shrinks networks. We show pruning shrinks networks.")
    monkeypatch.setattr(evidence, "LEAD_PENALTY", 0.0)  # the fitted value: ties go first-first
    assert rank_sentences(paper, "pruning shrinks networks", weights)[0].start == 0
    monkeypatch.setattr(evidence, "LEAD_PENALTY", 0.1)
    ranked = rank_sentences(paper, "pruning shrinks networks", weights)
    assert ranked[0].start > 0 and ranked[0].match == ranked[1].match


def test_evaluation_scores_not_stated_as_score_py_does():
    spec = importlib.util.spec_from_file_location("score", SCORE_PY)
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    gold = [{"id": "a", "type": "not-stated", "gold_titles": ["P"], "answer_keywords": []},
            {"id": "b", "type": "not-stated", "gold_titles": ["P"], "answer_keywords": []},
            {"id": "c", "type": "single", "gold_titles": ["P"], "answer_keywords": [["7"]]},
            {"id": "d", "type": "unanswerable", "gold_titles": [], "answer_keywords": []}]
    preds = [{"id": "a", "answer": "not stated [1]", "citations": [{"title": "P"}],
              "retrieved": ["Q", "P"], "abstained": True},
             {"id": "b", "answer": "It is 7 [1].", "citations": [{"title": "P"}],
              "retrieved": ["P"], "abstained": False},
             {"id": "c", "answer": "It is 7 [1].", "citations": [{"title": "P"}],
              "retrieved": ["P"], "abstained": False},
             {"id": "d", "answer": "The papers don't answer.", "citations": [],
              "abstained": True}]
    ours, theirs = evaluate(gold, preds), score.evaluate(gold, preds)
    for group in ("not-stated", "single", "unanswerable"):
        for metric, value in theirs["by_type"][group].items():
            assert ours[group][metric] == value, (group, metric)
    assert ours["not-stated"]["abstention_accuracy"] == 0.5
    assert ours["not-stated"]["recall@5"] == 1.0


def test_a_which_paper_question_names_the_paper(seed_settings):
    a = ask("Which work swaps the Pseudo-Huber loss for a Cauchy loss when training latent "
            "consistency models?", mode="extractive", settings=seed_settings)
    title = "Improved Training Technique for Latent Consistency Models"
    assert not a.abstained and a.citations[0].title == title
    assert title in a.text and f"[{a.citations[0].n}]" in a.text


def test_a_question_asking_which_work_it_is_is_never_not_stated(seed_settings):
    # The question's words ask for a paper, not a detail its abstract could lack: the
    # answer names a paper or abstains.
    engine = get_engine(seed_settings)
    question = "Which paper reaches real-time instance segmentation with a mask learning rate?"
    kind = classify(question)
    ret = retrieve(engine, question, kind)
    v = decide(seed_settings.decision, ret.query, question, ret.sources, ret.best_dense,
               engine.weights, kind)
    assert kind.identity and v.stated == 1.0 and not v.not_stated


def test_extractive_mode_says_not_stated_when_no_sentence_carries_the_asked_kind(
        seed_settings):
    # The SSD abstract writes values, but none beside a word of "learning rate": the stated
    # regression weighs that (`kind_unmatched`) and says "not stated"; the kind check, off
    # by default, makes it decide on its own.
    engine, cfg = get_engine(seed_settings), seed_settings.decision
    question = "What learning rate was the SSD single-shot detector trained with?"
    kind = classify(question)
    ret = retrieve(engine, question, kind)
    v = decide(cfg, ret.query, question, ret.sources, ret.best_dense, engine.weights, kind)
    assert ret.sources[0].paper.title.startswith("SSD") and not v.abstain
    assert v.signals["kind_unmatched"] == 1.0 and v.not_stated
    assert not cfg.kind_check and kind_checked(cfg, v, kind) == v
    checked = kind_checked(cfg.model_copy(update={"kind_check": True}), replace(v, stated=0.9),
                           kind)
    assert checked.not_stated and checked.stated == 0.0
    a = ask(question, mode="extractive", settings=seed_settings)
    assert a.abstained and a.citations[0].title.startswith("SSD")
    # "What is YOLACT ...?" asks what it is, not which thing: no kind to check.
    what = "What is YOLACT and how fast does it run?"
    kind = classify(what)
    ret = retrieve(engine, what, kind)
    v = decide(cfg, ret.query, what, ret.sources, ret.best_dense, engine.weights, kind)
    assert not kind.wants_name and v.signals["kind_unmatched"] == 0.0


def test_the_models_yes_moves_the_verdict_through_the_regressions_that_weigh_it(seed_settings):
    # The fitted regressions of the config, over one real retrieval: a doubting model
    # turns an answer into a refusal, a confident one keeps it; the papers stay.
    engine, cfg = get_engine(seed_settings), seed_settings.decision
    question = "What FID on ImageNet 256x256 does classifier guidance reach?"
    kind = classify(question)
    ret = retrieve(engine, question, kind)
    cheap = decide(cfg, ret.query, question, ret.sources, ret.best_dense, engine.weights, kind)
    sure, doubt = (with_model_yes(cfg, cheap, p, kind) for p in (0.99, 0.01))
    assert cfg.covered_yes.weights["model_yes"] > 0 and cfg.stated_yes.weights["model_yes"] > 0
    assert not sure.abstain and not sure.not_stated and (doubt.abstain or doubt.not_stated)
    assert sure.covered > doubt.covered and sure.papers == doubt.papers == cheap.papers
    assert sure.signals["model_yes"] == yes_log_odds(0.99) > 0 > yes_log_odds(0.01)


def test_the_models_yes_is_weighed_again_only_where_no_sentence_carries_the_asked_kind():
    unmatched, matched = yes_signals({"kind_unmatched": 1.0}, 0.9), yes_signals({"kind_unmatched": 0.0}, 0.9)
    assert unmatched["model_yes_unmatched"] == unmatched["model_yes"] == yes_log_odds(0.9) > 0
    assert matched["model_yes_unmatched"] == 0.0 and matched["model_yes"] == yes_log_odds(0.9)
    # The fitted stated decision weighs it (bench/fit_decision.py's STATED_YES).
    assert "model_yes_unmatched" in load_settings().decision.stated_yes.weights


def test_only_local_answers_about_one_paper_weigh_the_models_yes():
    from rag.generation import weighs_yes

    settings, one = load_settings(), classify("What FID does classifier guidance reach?")
    assert weighs_yes(settings, "local", one)
    assert not weighs_yes(settings, "extractive", one) and not weighs_yes(settings, "openai", one)
    assert not weighs_yes(settings, "local", classify(MULTI_QUESTION))


def test_not_stated_says_when_the_closest_paper_never_mentions_the_work_asked_about(
        seed_settings):
    engine = get_engine(seed_settings)
    question = "YOLOv7 COCO AP and FPS on a V100?"
    kind = classify(question)
    ret = retrieve(engine, question, kind)
    a = extractive.not_stated(engine, question, ret, kind, "extractive", {})
    top = ret.sources[0]
    assert "yolov7" not in f"{top.paper.title} {top.paper.abstract}".lower()
    assert a.abstained and a.citations[0].n == top.n
    assert a.text.startswith("The closest paper found, ") and "never mentions YOLOv7" in a.text


@pytest.mark.parametrize("mode", ["extractive", "local", "openai"])
def test_a_work_the_index_never_mentions_is_refused_in_every_mode_without_a_model(
        seed_settings, mode):
    # A dead endpoint for "openai" and no local model call: the refusal needs neither.
    settings = seed_settings.model_copy(update={"llm": seed_settings.llm.model_copy(
        update={"openai_base_url": "http://127.0.0.1:9/v1", "timeout_s": 1,
                "model_path": Path("/nonexistent/model.gguf")})})
    a = ask("YOLOv7 COCO AP and FPS on a V100?", mode=mode, settings=settings)
    assert a.abstained and not a.citations and a.sources
    assert a.text.endswith("none of them mentions YOLOv7.")
    assert a.timings["unseen_names"] == ["YOLOv7"]
    assert "yolov7" not in " ".join(f"{s.paper.title} {s.paper.abstract}".lower()
                                    for s in a.sources)


def test_a_detail_the_abstract_does_not_give_is_not_stated(seed_settings):
    # YOLACT++'s abstract gives no learning rate (it does say "training on only one GPU",
    # so a GPU count is not a detail it lacks); "YOLACT" names YOLACT++.
    a = ask("What learning rate was YOLACT trained with?",
            mode="extractive", settings=seed_settings)
    assert a.abstained and "does not state what learning rate" in a.text
    assert "never mentions" not in a.text
    assert a.citations and a.citations[0].title.startswith("YOLACT")
    paper = next(s.paper for s in a.sources if s.n == a.citations[0].n)
    assert paper.abstract[a.citations[0].start:a.citations[0].end] == a.citations[0].quote



def test_asked_which_device_the_kind_check_needs_a_device_name(seed_settings):
    # YOLACT's abstract names the Titan Xp without writing "GPU"; TabPFN's says only "when
    # using a GPU", which names none.
    named = ask("Which GPU was YOLACT evaluated on?", mode="extractive", settings=seed_settings)
    assert not named.abstained and "Titan Xp" in named.text
    # With the kind check (decision.kind_check, off by default: the stated regression
    # weighs the same signal) a device must be named, else "not stated".
    question = "What hardware does TabPFN run on?"
    checking = seed_settings.model_copy(update={"decision": seed_settings.decision.model_copy(
        update={"kind_check": True})})
    vague = ask(question, mode="extractive", settings=checking)
    assert vague.abstained and "does not state" in vague.text
    assert vague.citations and vague.citations[0].title.startswith("TabPFN")

MULTI_QUESTION = ("Which papers do real-time instance segmentation with prototype masks, and "
                  "how do they differ?")


def test_a_multi_paper_question_gets_one_named_line_per_paper(seed_settings):
    a = ask(MULTI_QUESTION, mode="extractive", settings=seed_settings)
    lines = a.text.splitlines()
    assert not a.abstained and len(lines) == len(a.citations) >= 2
    titles = {c.title for c in a.citations}
    assert {"YOLACT: Real-time Instance Segmentation",
            "YOLACT++: Better Real-time Instance Segmentation"} <= titles
    for line, c in zip(lines, a.citations):
        assert line.startswith("- ") and c.title in line and f"[{c.n}]" in line


def test_a_multi_paper_line_quotes_what_the_question_asks_of_each_paper(monkeypatch):
    question = ("Which papers train once-for-all supernets, and how does each schedule the "
                "shrinking of the network?")
    kind = classify(question)
    assert kind.multi and kind.each == "how does each schedule the shrinking of the network"
    assert classify("Which papers train once-for-all supernets?").each == ""
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    engine = SimpleNamespace(weights=weights)  # a fake engine: only its weights are read
    paper = fake_paper("Once-for-All", "We train once-for-all supernets for many devices. "
                       "The sub-networks of once-for-all supernets need no training. "
                       "Progressive shrinking orders the training.")
    source = Source(1, paper, 1.0, 0.6, 1.0)
    evs = rank_sentences(paper, question, weights)
    assert "Progressive" not in evs[0].text
    more = extractive._more_sentences(source, evs, kind, engine, 0)
    assert [ev.text for ev in more] == ["Progressive shrinking orders the training."]
    monkeypatch.setattr(extractive, "MULTI_DETAIL", False)
    assert extractive._more_sentences(source, evs, kind, engine, 0) == evs[1:2]


class ScriptedChat:
    """A FAKE chat model (a narrow unit: the wiring of the model check): it replies `check`
    to the check prompt and `answer` otherwise. Real models are measured in bench/."""

    name = "fake"

    def __init__(self, check: str, answer: str):
        self.check, self.answer, self.prompts = check, answer, []

    def stream(self, messages, *, max_tokens, stop=None, fixed=0):
        self.prompts.append(messages[-1]["content"])
        yield self.check if "reply only: NONE" in messages[-1]["content"] else self.answer

    def complete(self, messages, *, max_tokens, stop=None, fixed=0):
        return "".join(self.stream(messages, max_tokens=max_tokens, stop=stop))


def test_a_model_mode_quotes_each_paper_of_a_multi_paper_answer(seed_settings, monkeypatch):
    import rag.llm

    def no_model(settings, mode):
        raise AssertionError("a quoted multi-paper answer loads no model")
    monkeypatch.setattr(rag.llm, "get_chat_model", no_model)
    local = ask(MULTI_QUESTION, mode="local", settings=seed_settings)
    quoted = ask(MULTI_QUESTION, mode="extractive", settings=seed_settings)
    assert local.mode == "local" and not local.abstained
    assert local.text == quoted.text and local.citations == quoted.citations


def test_multi_lines_model_has_the_model_write_each_line(seed_settings, monkeypatch):
    import rag.llm

    fake = ScriptedChat("", "It reaches 29.8 mAP on MS COCO with prototype masks [1].")
    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: fake)
    settings = seed_settings.model_copy(update={
        "llm": seed_settings.llm.model_copy(update={"multi_lines": "model"})})
    a = ask(MULTI_QUESTION, mode="local", settings=settings)
    lines = a.text.splitlines()
    assert len(fake.prompts) == len(lines) == len(a.citations) >= 2
    assert all(line.startswith("- ") and f"[{c.n}]" in line
               for line, c in zip(lines, a.citations, strict=True))


def test_a_model_answer_to_which_paper_leads_with_the_title(seed_settings, monkeypatch):
    import rag.llm

    # The model names the paper by its short name only; the answer to "which paper" is
    # its title, added in code.
    fake = ScriptedChat("", "YOLACT++ does, with deformable convolutions [1].")
    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: fake)
    a = ask("Which paper improves real-time instance segmentation with deformable "
            "convolutions in the backbone?", mode="local", settings=seed_settings)
    title = "YOLACT++: Better Real-time Instance Segmentation"
    assert not a.abstained and a.citations[0].title == title
    assert a.text.startswith(f"{title} [{a.citations[0].n}]: YOLACT++ does"), a.text
    assert names_paper("YOLACT++ does [1].", fake_paper(title, "x."))
    assert not names_paper("YOLACT++ does [1].", fake_paper(title, "x."), by_title=True)


def ask_local_with(seed_settings, question: str, **decision):
    """`ask` in local mode with these decision settings changed."""
    settings = seed_settings.model_copy(update={"decision": seed_settings.decision.model_copy(
        update=decision)})
    return ask(question, mode="local", settings=settings)


@pytest.mark.parametrize("reply, writes_a_source_number", [
    ("YOLACT reaches 29.8 mAP on MS COCO [1].", True),  # 29.8 is in the abstract
    ("YOLACT reaches 41.7 mAP on MS COCO [1].", False),  # 41.7 is in no source
    ("YOLACT reaches a high mask mAP on MS COCO [1].", False),  # no number at all
])
def test_a_model_answer_to_how_much_needs_a_number_its_sources_write(
        seed_settings, monkeypatch, reply, writes_a_source_number):
    import rag.llm

    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: ScriptedChat("", reply))

    # `number_check_below`: at 1.0 the check may always refuse, at 0.0 never.
    doubt, sure = (ask_local_with(seed_settings, "What mask mAP does YOLACT reach on MS COCO?",
                                  number_check_below=below) for below in (1.0, 0.0))
    if writes_a_source_number:
        assert not doubt.abstained and not sure.abstained and "29.8" in doubt.text
        assert "no_source_number" not in doubt.timings
    else:
        # Not stated, unless the decision is sure the abstract states it: then the model
        # most likely cited the wrong source, and the sources are quoted instead.
        assert doubt.abstained and "does not state what mask mAP" in doubt.text, doubt.text
        assert doubt.model_output == reply and doubt.timings["no_source_number"]
        assert not sure.abstained and "29.8" in sure.text and reply not in sure.text
        assert sure.timings["no_source_number"]


@pytest.mark.parametrize("reply, invented", [
    ("YOLACT reaches 29.8 mAP on MS COCO at 99 fps [1].", ["99"]),  # 99 is in no source
    ("YOLACT reaches 29.8 mAP on MS COCO [1].", []),
])
def test_a_model_answer_stating_a_value_no_source_writes_is_not_kept(
        seed_settings, monkeypatch, reply, invented):
    import rag.llm

    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: ScriptedChat("", reply))
    # The same cut as the number check's: under it "not stated", from it on the quotes.
    doubt, sure = (ask_local_with(seed_settings, "What mask mAP does YOLACT reach on MS COCO?",
                                  number_check_below=below) for below in (1.0, 0.0))
    assert doubt.timings.get("invented_values", []) == invented
    if invented:
        assert doubt.abstained and "does not state what mask mAP" in doubt.text, doubt.text
        assert not sure.abstained and "29.8" in sure.text and "99 fps" not in sure.text
    else:
        assert not doubt.abstained and not sure.abstained and doubt.text == sure.text
        assert "29.8 mAP" in doubt.text


@pytest.mark.parametrize("reply, names_a_source_name", [
    ("YOLACT was evaluated on a single Titan Xp [1].", True),  # the abstract's GPU
    ("YOLACT was evaluated on a single GPU [1].", False),  # names no GPU
    ("YOLACT was evaluated on a single RTX 4090 [1].", False),  # a GPU no source names
])
def test_a_model_answer_to_which_thing_needs_a_name_its_sources_write(
        seed_settings, monkeypatch, reply, names_a_source_name):
    import rag.llm

    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: ScriptedChat("", reply))

    doubt, sure = (ask_local_with(seed_settings, "Which GPU was YOLACT evaluated on?",
                                  name_check_below=below) for below in (1.0, 0.0))
    assert not sure.abstained and sure.model_output == reply
    if names_a_source_name:
        assert not doubt.abstained and "Titan Xp" in doubt.text
        assert "no_source_name" not in doubt.timings
    else:
        assert doubt.abstained and "does not state" in doubt.text, doubt.text
        assert doubt.timings["no_source_name"] and sure.timings["no_source_name"]


def test_the_cli_shows_the_checked_answer_when_the_checks_changed_the_stream(
        seed_settings, monkeypatch, capsys):
    import rag.llm
    from ui.cli import main

    made_up = "YOLACT reaches 41.7 mAP on MS COCO [1]."  # 41.7 is in no source
    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: ScriptedChat("", made_up))
    monkeypatch.setenv("ASKPAPERS_HOME", str(seed_settings.home))
    assert main(["ask", "What mask mAP does YOLACT reach on MS COCO?", "--mode", "local"]) == 0
    out = capsys.readouterr().out
    streamed, checked = out.split("Checked answer:\n")
    # The decision is sure the abstract gives the mAP: its quote replaces the made-up one.
    assert made_up in streamed and made_up not in checked and "29.8" in checked


@pytest.mark.parametrize("reply, abstained", [
    ("SOLOv2 reaches 29.8 mAP on MS COCO [1].", True),  # no source names SOLOv2
    ("It reaches 29.8 mAP on MS COCO [1].", False),
])
def test_a_model_answer_naming_a_work_its_sources_never_name_abstains(
        seed_settings, monkeypatch, reply, abstained):
    import rag.decision
    import rag.llm

    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: ScriptedChat("", reply))
    # No indexed chunk names SOLOv2, so the decision would refuse before any answer; this
    # test is of the check after the answer, so that refusal is switched off (a narrow fake).
    monkeypatch.setattr(rag.decision, "unseen_names", lambda question, weights: [])
    # Nor may the covered decision refuse it (it weighs the unseen name too).
    decision = seed_settings.decision
    settings = seed_settings.model_copy(update={"decision": decision.model_copy(update={
        "covered": decision.covered.model_copy(update={"threshold": 1e-6})})})
    a = ask("What mask mAP does the real-time instance segmenter SOLOv2 reach on MS COCO?",
            mode="local", settings=settings)
    assert a.abstained is abstained, a.text
    if abstained:
        assert a.timings.get("unwritten_names") == ["SOLOv2"], (a.text, a.timings)
        assert a.text.startswith("The indexed papers don't answer") and "mention SOLOv2" in a.text
        assert a.model_output == reply and not a.citations
    else:
        assert "29.8" in a.text and "unwritten_names" not in a.timings


@pytest.mark.parametrize("check, abstained", [("NONE", True), ("[1] NONE", True),
                                              ("29.8 mAP [1]", False)])
def test_the_model_check_turns_none_into_not_stated(seed_settings, monkeypatch, check, abstained):
    import rag.llm

    fake = ScriptedChat(check, "YOLACT reaches 29.8 mAP on MS COCO [1].")
    monkeypatch.setattr(rag.llm, "get_chat_model", lambda settings, mode: fake)
    # grey 0.5: every question is near a threshold, so the check runs.
    settings = seed_settings.model_copy(update={
        "decision": seed_settings.decision.model_copy(update={"grey": 0.5})})
    a = ask("What mask mAP does YOLACT reach on MS COCO?", mode="local", settings=settings)
    assert "Copy, word for word" in fake.prompts[0] and "what mask mAP" in fake.prompts[0]
    assert a.abstained is abstained, a.text
    if abstained:
        assert "does not state what mask mAP" in a.text and len(fake.prompts) == 1
        assert a.citations[0].title.startswith("YOLACT")
    else:
        assert "29.8" in a.text and len(fake.prompts) == 2


def test_a_list_of_the_asked_things_answers_a_which_things_question():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "In TEMPO, which components is the input series decomposed into?"
    kind = classify(question)
    assert kind.wants_name
    listed = fake_paper("TEMPO", "We decompose the interaction between trend, seasonal and "
                        "residual components.")
    vague = fake_paper("TEMPO", "We decompose the input series into three components.")
    assert ask_match(kind, question, listed, weights) > 0
    assert ask_match(kind, question, vague, weights) == 0.0
    assert lists_asked("components such as trend and season", question, kind.ask)
    # The question's own words listed name nothing new.
    assert not lists_asked("the input and series components", question, kind.ask)
    # The local name check reads a list as naming the things asked.
    assert names_given("It splits the series into trend, seasonal and residual components.",
                       question, [listed], ask=kind.ask)
    assert not names_given("It splits the series into components.", question, [listed],
                           ask=kind.ask)


def test_the_keyword_margin_sets_apart_a_paper_dense_scores_tie():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    question = "Which network nests small U-shaped blocks in a bigger U-shaped one?"
    ahead = [Source(1, fake_paper("Nested U", "Nested U-shaped blocks."), 1.0, 0.55, 20.0),
             Source(2, fake_paper("Res2Net", "Multi-scale blocks."), 0.9, 0.56, 5.0)]
    level = [Source(1, ahead[0].paper, 1.0, 0.55, 6.0), Source(2, ahead[1].paper, 0.9, 0.56, 5.0)]

    def margin(sources):
        return question_signals(question, question, sources, 0.56, weights,
                                classify(question))["keyword_margin"]

    assert margin(ahead) > margin(level) > 0.0


@pytest.mark.parametrize("question, field", [
    ("Who wrote the paper on speculative decoding?", "authors"),
    ("authors of the sparse attention paper?", "authors"),
    ("List the authors of the pruning survey.", "authors"),
    ("What are the names of the authors of the MoE paper?", "authors"),
    ("When was the diffusion distillation paper published?", "year"),
    # The authors named inside a question on something else: not a record question.
    ("Which serving engine did the authors of the MoE paper build their kernels into?", ""),
    ("Which dataset do the authors of the survey recommend?", ""),
])
def test_a_record_field_is_read_only_when_it_is_asked(question, field):
    assert record_field(question) == field


def test_the_length_signal_counts_only_the_words_past_a_short_question():
    weights = TermWeights({}, [], 10)  # a fake: every word weighs the same
    source = Source(1, fake_paper("A model", "A model."), 0.5, 0.5, 0.5, [])

    def length(question):
        return question_signals(question, question, [source], 0.5, weights,
                                classify(question))["length"]
    assert length("What hardware does TabPFN run on?") == 0.0
    long = ("Which paper trains one weight-sharing supernet, then picks subnets for each "
            "device and latency target with no retraining, shrinking kernels and depth?")
    longer = long[:-1] + ", width and input resolution as training goes on?"
    assert 0.0 < length(long) < length(longer)
