"""The export as a Psych-DS dataset (``emostudy export STUDY --out DIR --format psych-ds``)::

    DIR/dataset_description.json                       schema.org Dataset (JSON-LD), variableMeasured = every column
    DIR/data/study-<S>_task-<T>_data.csv               the answers (the columns of answers.csv)
    DIR/data/study-<S>_task-<T>_description-participants_data.csv   the participants (participants.csv)
    DIR/documentation/codebook.md, plan.json, manifest.json
    DIR/analysis/analysis.R                            refits the paper's tests and the models in R
    DIR/README.md

<S> and <T> are the study name and task with every character outside [a-zA-Z0-9] removed (Psych-DS
values are alphanumeric). The CSV bytes are those of the plain export. Missing values are empty cells and
the answer ``none`` is a value (said in the description and the codebook).

:func:`psychds_problems` checks a folder against the rules of the Psych-DS specification that a dataset
must meet (required files, the required keys of dataset_description.json, the file-name pattern of data
files, the CSV header rules, and that every column is in variableMeasured); the export runs it on what it
is about to write.

References
----------
Psych-DS specification, https://psych-ds.github.io/ (dataset_description.json: "@context", "@type"
"Dataset", "name", "description", "variableMeasured"; data files: keyword-value names ending in
``_data.csv`` under data/).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from stimuli.model_formulas import CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL, TIE_RTOL

SCHEMA_ORG_CONTEXTS = ("https://schema.org", "https://schema.org/", "http://schema.org", "http://schema.org/")
REQUIRED_KEYS = ("@context", "@type", "name", "description", "variableMeasured")
RECOMMENDED_KEYS = ("author", "citation", "license", "url")
RECOMMENDED_FOLDERS = ("analysis", "results", "materials", "documentation")
SCHEMA_VERSION = "Psych-DS 1.5.1"
"""The version of the specification (its schema model) whose rules :func:`psychds_problems` checks."""
OFFICIAL_KEYWORDS = ("study", "site", "subject", "session", "task", "condition", "trial", "stimulus", "description")
DATAFILE_PATTERN = re.compile(r"([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv")


def keyword_value(text: str) -> str:
    """``text`` as a Psych-DS keyword value: only [a-zA-Z0-9] kept (``paper-task1`` -> ``papertask1``)."""
    return re.sub(r"[^a-zA-Z0-9]", "", str(text))


def data_file_names(study: str, task: str, study_id: int) -> tuple[str, str]:
    """(answers, participants) file names under data/."""
    s = keyword_value(study) or f"id{study_id}"
    t = keyword_value(task) or "unknown"
    return f"study-{s}_task-{t}_data.csv", f"study-{s}_task-{t}_description-participants_data.csv"


@dataclass(frozen=True)
class DataFile:
    """One data file of the dataset: its name under data/, what a row is, the unique key of its rows, its
    row count and the description of each of its columns (the codebook)."""

    name: str
    rows_are: str
    key: tuple[str, ...]
    n_rows: int
    codebook: Mapping[str, str]


def sidecar_name(data_file: str) -> str:
    """The sidecar metadata file of a data file (Psych-DS inheritance): same name, ``.json``."""
    return data_file[: -len(".csv")] + ".json"


def _columns(f: DataFile, questions: list[dict[str, Any]], answers_file: str | None) -> list[dict[str, Any]]:
    out = []
    for column, text in f.codebook.items():
        entry: dict[str, Any] = {"@type": "PropertyValue", "name": column, "description": text}
        if column == "answer" and f.name == answers_file and questions:
            entry["description"] += " Questions: " + "; ".join(
                f"{q['id']} ({q['type']}): " + ", ".join(str(o["value"]) for o in q.get("options", []))
                for q in questions) + "."
        if column == "score":
            entry["unitText"] = "points of the question's scale"
        out.append(entry)
    return out


def sidecar(f: DataFile, questions: list[dict[str, Any]], answers_file: str | None) -> dict[str, Any]:
    """``data/<file>.json``: the file's own description and its columns (variableMeasured), which replace the
    dataset-level ones for this file (Psych-DS inheritance), so that a column name used in two files with two
    meanings (``answer``: an option value here, the chosen interval there) is described right in each."""
    return {"@context": "https://schema.org/", "@type": "Dataset", "name": f.name,
            "description": f"{f.rows_are} ({f.n_rows} rows; each row is identified by {', '.join(f.key)}).",
            "variableMeasured": _columns(f, questions, answers_file)}


def dataset_description(*, study: str, task: str, files: list[DataFile], questions: list[dict[str, Any]],
                        plan_sha256: str | None, exported_at: str,
                        metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The schema.org JSON-LD Dataset: every data file (``distribution``: name, what a row is, rows), every
    column of every file (``variableMeasured``; a column that means different things in different files
    points to the files' sidecars, which describe it per file), and the recommended keys given in the spec's
    ``[study]`` (``metadata``: authors, license, citation, url, funder)."""
    answers_file = files[0].name if files else None
    texts: dict[str, dict[str, str]] = {}
    for f in files:
        for e in _columns(f, questions, answers_file):
            texts.setdefault(e["name"], {})[f.name] = e["description"]
    variables = []
    for column, per_file in texts.items():
        if len(set(per_file.values())) == 1:
            entry = next(e for f in files for e in _columns(f, questions, answers_file) if e["name"] == column)
        else:
            entry = {"@type": "PropertyValue", "name": column,
                     "description": "Means different things in different data files; each file's sidecar "
                                    "(the .json next to it) describes it: "
                                    + ", ".join(f"data/{sidecar_name(n)}" for n in per_file) + "."}
        variables.append(entry)
    meta = dict(metadata or {})
    recommended: dict[str, Any] = {}
    if meta.get("authors"):
        recommended["author"] = [{"@type": "Person", "name": a} for a in meta["authors"]]
    for key in ("citation", "license", "url", "funder"):
        if meta.get(key):
            recommended[key] = meta[key]
    n_rows = ", ".join(f"{f.n_rows} rows in {f.name}" for f in files)
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": f"{study}: {task} answers",
        "description": (f"Answers of the perceptual study {study!r} ({task}) collected with emostudy, in "
                        f"{len(files)} data files ({n_rows}): "
                        + "; ".join(f"{f.name}: {f.rows_are[0].lower() + f.rows_are[1:]}" for f in files)
                        + ". Participants are pseudonymous. Empty cells are missing values; the answer 'none' is "
                          "a value. See README.md, documentation/codebook.md and the sidecar .json of each data "
                          "file; analysis/analysis.R refits the tests and the models in R."),
        "schemaVersion": SCHEMA_VERSION,
        "keywords": ["emotion perception", "talking faces", "perceptual study", task],
        "dateCreated": exported_at,
        **recommended,
        "distribution": [{"@type": "DataDownload", "name": f.name, "contentUrl": f"data/{f.name}",
                          "encodingFormat": "text/csv", "description": sidecar(f, questions, answers_file)["description"]}
                         for f in files],
        "variableMeasured": variables,
        **({"identifier": f"sha256:{plan_sha256}"} if plan_sha256 else {}),
    }


def _names(vm: Any, where: str, problems: list[str]) -> set[str]:
    names: set[str] = set()
    for k, v in enumerate(vm if isinstance(vm, list) else []):
        if isinstance(v, str) and v:
            names.add(v)
        elif isinstance(v, dict) and v.get("@type") == "PropertyValue" and isinstance(v.get("name"), str):
            names.add(v["name"])
        else:
            problems.append(f"{where}: variableMeasured[{k}] must be a column name or a PropertyValue object with "
                            "a name")
    return names


def _json_object(files: Mapping[str, bytes], path: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        obj = json.loads(files[path].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path} is not valid UTF-8 JSON: {exc}")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{path} must hold a JSON object")
        return None
    return obj


def compiled_metadata(files: Mapping[str, bytes], data_file: str, top: Mapping[str, Any],
                      problems: list[str]) -> dict[str, Any]:
    """The metadata of one data file by the Psych-DS inheritance principle: dataset_description.json, then
    each ``file_metadata.json`` from data/ down to the file's folder, then its sidecar; a key of a lower file
    replaces the higher one's wholesale."""
    meta = dict(top)
    parts = data_file.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth] + ["file_metadata.json"])
        if path in files:
            meta.update(_json_object(files, path, problems) or {})
    side = sidecar_name(data_file)
    if side in files:
        meta.update(_json_object(files, side, problems) or {})
    return meta


def psychds_problems(folder: str | Path | Mapping[str, bytes]) -> list[str]:
    """Every rule of the Psych-DS specification (schema 1.5.1) that ``folder`` (a path, or {relative path:
    bytes}) breaks; empty when it is a valid dataset. Checked: dataset_description.json at the top, valid JSON
    with the required keys (@context schema.org, @type Dataset, name and description non-empty text,
    variableMeasured a non-empty list of names or PropertyValue objects with a name); at least one data
    file under data/ named by the pattern ``([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data.csv``; in
    each, a header without empty or repeated names, rows as long as the header, and every column listed in
    the variableMeasured of the file's compiled metadata (dataset_description.json overridden by
    file_metadata.json and the file's sidecar .json, which must be JSON objects). Keywords outside the
    official list are reported too (the specification warns). :func:`psychds_warnings` lists what is only
    recommended.
    """
    files = _read_tree(folder)
    problems: list[str] = []
    desc: dict[str, Any] | None = None
    if "dataset_description.json" not in files:
        problems.append("dataset_description.json is missing from the top of the dataset")
    else:
        desc = _json_object(files, "dataset_description.json", problems)
        if desc is not None:
            for key in REQUIRED_KEYS:
                if key not in desc:
                    problems.append(f"dataset_description.json: required key {key!r} is missing")
            if "@context" in desc and desc["@context"] not in SCHEMA_ORG_CONTEXTS:
                problems.append(f"dataset_description.json: @context {desc['@context']!r} must be schema.org")
            if "@type" in desc and desc["@type"] != "Dataset":
                problems.append(f"dataset_description.json: @type {desc['@type']!r} must be 'Dataset'")
            for key in ("name", "description"):
                if key in desc and (not isinstance(desc[key], str) or not desc[key].strip()):
                    problems.append(f"dataset_description.json: {key} must be non-empty text")
            vm = desc.get("variableMeasured")
            if "variableMeasured" in desc and (not isinstance(vm, list) or not vm):
                problems.append("dataset_description.json: variableMeasured must be a non-empty list")
            _names(vm, "dataset_description.json", problems)
    data_files = sorted(p for p in files if p.startswith("data/") and p.endswith(".csv"))
    good = [p for p in data_files if DATAFILE_PATTERN.fullmatch(p.rsplit("/", 1)[-1])]
    for p in sorted(set(data_files) - set(good)):
        problems.append(f"{p}: a data file name must be keyword-value pairs ending in _data.csv "
                        "(e.g. study-x_task-y_data.csv)")
    if not good:
        problems.append("data/ holds no valid data file (keyword-value name ending in _data.csv)")
    for p in good:
        stem = p.rsplit("/", 1)[-1][: -len("_data.csv")]
        for pair in stem.split("_"):
            if pair.split("-", 1)[0] not in OFFICIAL_KEYWORDS:
                problems.append(f"{p}: keyword {pair.split('-', 1)[0]!r} is not an official Psych-DS keyword")
        meta = compiled_metadata(files, p, desc or {}, problems)
        own = sidecar_name(p) in files  # the top-level entries were checked above
        names = _names(meta.get("variableMeasured"), sidecar_name(p), problems if own else [])
        problems += _csv_problems(p, files[p], names)
    return problems


def psychds_warnings(folder: str | Path | Mapping[str, bytes]) -> list[str]:
    """What the specification recommends and ``folder`` lacks (the validator's warnings): README and CHANGES
    (.md or .txt), the folders analysis/, results/, materials/, documentation/, a .psychds-ignore file, and
    the keys author, citation, license, url of dataset_description.json."""
    files = _read_tree(folder)
    out = []
    for stem in ("README", "CHANGES"):
        if not any(f"{stem}{ext}" in files for ext in (".md", ".txt")):
            out.append(f"{stem}.md (or .txt) is recommended at the top of the dataset")
    for d in RECOMMENDED_FOLDERS:
        if not any(p.startswith(d + "/") for p in files):
            out.append(f"a {d}/ folder is recommended")
    if ".psychds-ignore" not in files:
        out.append(".psychds-ignore is recommended at the top of the dataset")
    try:
        desc = json.loads(files.get("dataset_description.json", b"{}").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        desc = {}
    for key in RECOMMENDED_KEYS:
        if isinstance(desc, dict) and not desc.get(key):
            out.append(f"dataset_description.json: recommended key {key!r} is missing (from the spec's [study] "
                       f"{'authors' if key == 'author' else key})")
    return out


def _csv_problems(path: str, data: bytes, names: set[str]) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        return [f"{path}: not a UTF-8 CSV file ({exc})"]
    if not rows or not rows[0]:
        return [f"{path}: the header row is missing"]
    header = rows[0]
    out = []
    if any(not h.strip() for h in header):
        out.append(f"{path}: the header has an empty column name")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        out.append(f"{path}: repeated column names {repeated}")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            out.append(f"{path}, line {i}: {len(r)} cells for {len(header)} columns")
            break
    missing = [h for h in header if h not in names]
    if missing:
        out.append(f"{path}: columns {missing} are not in variableMeasured of dataset_description.json")
    return out


def _read_tree(folder: str | Path | Mapping[str, bytes]) -> dict[str, bytes]:
    if isinstance(folder, Mapping):
        return dict(folder)
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def r_script(*, answers_file: str, participants_file: str, task: str, chance: float = 1 / 6) -> str:
    """``analysis/analysis.R``: loads the answers and refits, in R, the paper's tests and our models.
    ``chance``: accuracy under guessing for the binomial tests (1 / options of the emotion question).

    The model formulas are those of :mod:`stimuli.model_formulas` (the ones ``emostudy analyze`` fits), and
    so is the tie rule of the signed-rank tests (``TIE_RTOL``: differences equal up to float noise are one
    value, as ``analysis.stats.snap_ties``). Exclusions follow the server's verdicts (``emostudy analyze
    --verdicts server``): valid surveys, consistency repeats and missing answers dropped. The ordinal model
    reports model-based and cluster-robust (participant, CR1) standard errors, like ``emostudy analyze``.
    ``Rscript analysis/analysis.R results.csv`` also writes every number it computes as ``name,value``
    rows (the R-parity test compares them with the Python report's).
    """
    logit = CORRECTNESS_MIXED_LOGIT.formula
    ordinal = REALNESS_ORDINAL.formula
    ordinal_mixed = f"{ordinal} + " + " + ".join(f"(1 | {g})" for g in CORRECTNESS_MIXED_LOGIT.random)
    return f"""# analysis.R - written by `emostudy export --format psych-ds` (task {task}).
# Refits in R the paper's tests and the models of `emostudy analyze`, from the files of this dataset.
# Run from anywhere:  Rscript analysis/analysis.R [results.csv]
#   (with results.csv: every number computed below is also written there as name,value rows)
# Needs R >= 4.1 and the packages lme4 and ordinal: install.packages(c("lme4", "ordinal"))
# Optional: coin (Wilcoxon signed-rank test with Pratt's zero handling, the default of emostudy analyze).
#
# Exclusions: the server's verdict (`emostudy analyze --verdicts server`): answers of valid surveys,
# consistency repeats and missing answers dropped. emostudy analyze recomputes the verdicts by default;
# they agree unless the report's cleaning table says otherwise.

script_dir <- local({{
  a <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else getwd()
}})
results_file <- commandArgs(trailingOnly = TRUE)[1]
# The dataset's top folder: the script's parent (Rscript analysis/analysis.R), else the working directory.
root <- if (file.exists(file.path(script_dir, "..", "dataset_description.json"))) {{
  normalizePath(file.path(script_dir, ".."))
}} else getwd()
read_data <- function(name) {{
  # Empty cells are missing values; "none" and every other text is a value.
  read.csv(file.path(root, "data", name), colClasses = "character", na.strings = "", check.names = FALSE)
}}
results <- data.frame(name = character(), value = numeric())
keep <- function(name, value) {{
  results[nrow(results) + 1, ] <<- list(name, as.numeric(value))
}}

# Ties of the signed-rank tests (the rule of emostudy analyze, analysis.stats.snap_ties): differences of
# means carry float noise (1/3 - 1/4 is not exactly 2/3 - 7/12), which would split ties and change the
# ranks. Sorted |d| whose consecutive gap is at most TIE_RTOL x the larger are made equal (to the run's
# smallest value) and |d| <= TIE_RTOL x max |d| become zeros.
TIE_RTOL <- {TIE_RTOL!r}
exact_ties <- function(d) {{
  a <- abs(d); n <- length(a)
  if (n == 0) return(d)
  o <- order(a); s <- a[o]
  new_run <- c(TRUE, if (n > 1) (s[-1] - s[-n]) > TIE_RTOL * s[-1] else logical(0))
  s <- s[cummax(ifelse(new_run, seq_len(n), 1L))]
  s[s <= TIE_RTOL * s[n]] <- 0
  out <- numeric(n); out[o] <- s
  sign(d) * out
}}
signed_rank <- function(label, d) {{
  d <- exact_ties(d[!is.na(d)])
  keep(paste0(label, ".n"), length(d)); keep(paste0(label, ".n_zeros"), sum(d == 0))
  if (any(d != 0)) {{
    # base R drops zero differences (Wilcoxon's zero method), normal approximation, no continuity correction
    w <- wilcox.test(d, exact = FALSE, correct = FALSE)
    print(w)
    keep(paste0(label, ".wilcox.V"), w$statistic); keep(paste0(label, ".wilcox.p"), w$p.value)
    if (requireNamespace("coin", quietly = TRUE)) {{
      # Pratt: zeros ranked, then left out of the sum (emostudy analyze's default)
      pr <- coin::wilcoxsign_test(d ~ numeric(length(d)), zero.method = "Pratt", distribution = "asymptotic")
      print(pr)
      keep(paste0(label, ".pratt.z"), coin::statistic(pr, type = "standardized"))
      keep(paste0(label, ".pratt.p"), coin::pvalue(pr))
    }}
  }}
}}
# A model that cannot be fitted (e.g. one participant: lme4 needs two levels of each grouping factor) is said
# in words and the script goes on.
fit_or_say <- function(what, expr) tryCatch(expr, error = function(e) {{
  cat(sprintf("%s was not fitted: %s\n", what, conditionMessage(e))); NULL
}})
# Small-sample factor of the cluster-robust (CR1) covariance, as emostudy analyze: G/(G-1) (N-1)/(N-K).
cr1 <- function(G, N, K) G / (G - 1) * (N - 1) / (N - K)

answers <- read_data("{answers_file}")
participants <- read_data("{participants_file}")
used <- subset(answers, verdict == "valid" & is_repeat == "0" & !is.na(answer))
cat(sprintf("%d answers of %d valid surveys\\n", nrow(used), length(unique(used$assignment))))
with_reference <- function(d) {{
  ref <- if ("GT" %in% d$source) "GT" else sort(unique(d$source))[1]
  d$source <- relevel(factor(d$source), ref = ref)
  d
}}

# ---- Task 1: emotion accuracy against chance (exact binomial test per source, Holm over the sources)
em <- subset(used, question == "emotion")
if (nrow(em) > 0) {{
  em$correct <- as.integer(ifelse(is.na(em$visual_emotion), FALSE, em$answer == em$visual_emotion))
  p <- c()
  for (s in sort(unique(em$source))) {{
    k <- sum(em$correct[em$source == s]); n <- sum(em$source == s)
    p[s] <- binom.test(k, n, p = {chance!r}, alternative = "greater")$p.value
    cat(sprintf("accuracy %s: %d / %d = %.4f, binomial p = %.4g\\n", s, k, n, k / n, p[s]))
    keep(paste0("accuracy.", s, ".n_correct"), k); keep(paste0("accuracy.", s, ".n_answers"), n)
    keep(paste0("accuracy.", s, ".binom_p"), p[s])
  }}
  holm <- p.adjust(p, method = "holm")
  print(holm)
  for (s in names(holm)) keep(paste0("accuracy.", s, ".binom_p_holm"), holm[s])
  k <- sum(em$correct); n <- nrow(em)
  p_all <- binom.test(k, n, p = {chance!r}, alternative = "greater")$p.value
  cat(sprintf("accuracy ALL: %d / %d, binomial p = %.4g\\n", k, n, p_all))
  keep("accuracy.ALL.n_correct", k); keep("accuracy.ALL.binom_p", p_all)
  # Mixed-effects logistic regression by maximum likelihood, Laplace approximation (emostudy analyze: the
  # same method, analysis/glmm.py); standard errors from the Hessian (vcov), Wald z and p.
  em$participant <- factor(em$participant); em$stimulus_id <- factor(em$stimulus_id)
  em <- with_reference(em)
  fit_logit <- fit_or_say("The mixed logit", lme4::glmer({logit}, data = em, family = binomial))
}}
if (nrow(em) > 0 && !is.null(fit_logit)) {{
  print(summary(fit_logit))
  cf <- coef(summary(fit_logit))
  for (t in rownames(cf)) {{
    keep(paste0("mixed_logit.", t, ".estimate"), cf[t, 1]); keep(paste0("mixed_logit.", t, ".se"), cf[t, 2])
    keep(paste0("mixed_logit.", t, ".z"), cf[t, 3]); keep(paste0("mixed_logit.", t, ".p"), cf[t, 4])
  }}
  th <- lme4::getME(fit_logit, "theta")
  keep("mixed_logit.sd.participant", th[["participant.(Intercept)"]])
  keep("mixed_logit.sd.item", th[["stimulus_id.(Intercept)"]])
  keep("mixed_logit.singular", lme4::isSingular(fit_logit))
  if (lme4::isSingular(fit_logit)) cat("Singular fit: a random-intercept SD is estimated at zero.\\n")
}}

# ---- Task 1: realness, OURS vs BL (or the first two non-GT sources), participant means
re <- subset(used, question == "realness" & !is.na(score))
if (nrow(re) > 0) {{
  re$score <- as.numeric(re$score)
  srcs <- unique(re$source)
  # emostudy's rule: OURS vs BL when both are present, else the first two non-GT sources in the order BL, OURS,
  # then alphabetical, else the first two sources.
  non_gt <- c(intersect(c("BL", "OURS"), srcs), sort(setdiff(srcs, c("GT", "BL", "OURS"))))
  pair <- if (all(c("OURS", "BL") %in% srcs)) c("OURS", "BL") else
    if (length(non_gt) >= 2) head(non_gt, 2) else head(c(intersect("GT", srcs), non_gt), 2)
  if (length(unique(pair)) == 2 && all(pair %in% srcs)) {{
    m <- tapply(re$score, list(re$participant, re$source), mean)[, pair, drop = FALSE]
    m <- m[complete.cases(m), , drop = FALSE]
    cat(sprintf("realness %s - %s, participant means:\\n", pair[1], pair[2]))
    signed_rank("realness", m[, 1] - m[, 2])
  }}
  # Proportional-odds model of the realness score (the same formula as emostudy analyze) with model-based
  # and cluster-robust (participant) standard errors, and with crossed random intercepts (ordinal::clmm)
  # as the mixed version that statsmodels cannot fit.
  re$score <- factor(re$score, ordered = TRUE)
  re$participant <- factor(re$participant); re$stimulus_id <- factor(re$stimulus_id)
  re <- with_reference(re)
  fit_ordinal <- fit_or_say("The ordinal model", ordinal::clm({ordinal}, data = re, link = "logit"))
}}
if (nrow(re) > 0 && !is.null(fit_ordinal)) {{
  print(summary(fit_ordinal))
  # Per-answer scores of the log-likelihood in (thresholds, beta), summed per participant: the sandwich.
  X <- model.matrix(~ source, re)[, -1, drop = FALSE]
  cuts <- fit_ordinal$alpha; K <- length(cuts)
  y <- as.integer(re$score); eta <- drop(X %*% fit_ordinal$beta[colnames(X)])
  lims <- c(-Inf, cuts, Inf); up <- lims[y + 1] - eta; lo <- lims[y] - eta
  pr <- plogis(up) - plogis(lo); fu <- dlogis(up); fl <- dlogis(lo)
  S <- cbind(sapply(seq_len(K), function(j) ((y == j) * fu - (y == j + 1) * fl) / pr), -((fu - fl) / pr) * X)
  bread <- vcov(fit_ordinal)
  G <- rowsum(S, as.character(re$participant))
  V_cl <- bread %*% crossprod(G) %*% bread * cr1(nrow(G), nrow(re), ncol(S))
  se_model <- sqrt(diag(bread))[colnames(X)]; se_cluster <- sqrt(diag(V_cl))[K + seq_len(ncol(X))]
  print(data.frame(estimate = fit_ordinal$beta[colnames(X)], se_model = se_model, se_cluster = se_cluster))
  for (t in colnames(X)) {{
    keep(paste0("ordinal.", t, ".estimate"), fit_ordinal$beta[[t]])
    keep(paste0("ordinal.", t, ".se_model"), se_model[[t]])
    keep(paste0("ordinal.", t, ".se_cluster"), se_cluster[[t]])
  }}
  if (!is.na(results_file)) write.csv(results, results_file, row.names = FALSE)
  fit_ordinal_mixed <- fit_or_say("The mixed ordinal model",
                                  ordinal::clmm({ordinal_mixed}, data = re, link = "logit"))
  if (!is.null(fit_ordinal_mixed)) print(summary(fit_ordinal_mixed))
}}

# ---- Task 2: primary label vs visual / audio emotion on mismatched videos, per participant
pr <- subset(used, question == "primary")
if (nrow(pr) > 0) {{
  mm <- subset(pr, visual_emotion != audio_emotion)
  v <- tapply(mm$answer == mm$visual_emotion, mm$participant, mean)
  a <- tapply(mm$answer == mm$audio_emotion, mm$participant, mean)
  cat("dominance, primary label, mismatched videos: visual - audio match per participant\\n")
  signed_rank("dominance", v - a[names(v)])
}}
if (!is.na(results_file)) write.csv(results, results_file, row.names = FALSE)
"""


def readme(study: str, task: str, files: list[DataFile], *, title: str = "", materials: list[str] = ()) -> str:
    """README.md: what the dataset is, every data file (what a row is, its key, its rows), every other file."""
    lines = [f"# {study} ({task})", ""]
    if title:
        lines += [title, ""]
    lines += ["A Psych-DS dataset written by `emostudy export --format psych-ds`. Participants are pseudonymous; "
              "empty cells are missing values and the answer `none` is a value.", "", "## Data files", ""]
    for f in files:
        lines.append(f"- `data/{f.name}` ({f.n_rows} rows): {f.rows_are}. Each row is identified by "
                     f"{', '.join(f'`{k}`' for k in f.key)}. Its columns are described in `data/{sidecar_name(f.name)}` "
                     "(and in `documentation/codebook.md`).")
    lines += ["", "## Other files", "",
              "- `dataset_description.json`: schema.org metadata: the data files (`distribution`), every column "
              "(`variableMeasured`; a column that means different things in two files points to their sidecars), "
              "authors, license, citation and url when the study's spec gives them",
              "- `CHANGES.md`: the versions of this dataset",
              "- `documentation/codebook.md`, `documentation/plan.json` (the compiled study plan), "
              "`documentation/manifest.json` (the stimulus set)",
              "- `materials/`: " + (", ".join(f"`{m}`" for m in materials) or "none"),
              "- `analysis/analysis.R`: the paper's tests and the models, refitted in R (lme4, ordinal; coin "
              "optional): `Rscript analysis/analysis.R results/results_R.csv`",
              "- `results/`: where `analysis.R` writes its numbers (empty in the export)", ""]
    return "\n".join(lines)


def changes(exported_at: str, plan_sha256: str | None) -> str:
    """CHANGES.md: the dataset's version history (one entry: this export)."""
    return ("# Changes\n\n"
            f"## 1.0.0 ({exported_at[:10]})\n\n"
            f"- Exported by `emostudy export --format psych-ds` at {exported_at}"
            + (f" from the study plan with spec SHA-256 {plan_sha256}" if plan_sha256 else "") + ".\n"
            "- A later export of the same study (more participants, new verdicts) is a new version: add an "
            "entry above this one saying what changed.\n")


def participant_texts(plan: Mapping[str, Any]) -> str:
    """materials/participant-texts.md: everything a participant read (the consent page's title and intro,
    the instructions, each question's prompt and options), as written in the spec and compiled in the plan."""
    part = plan.get("participant") or {}
    out = ["# What the participants read", "",
           "Written by the researcher in the spec's [participant] table and questions (compiled into the plan).", ""]
    for key, what in (("title", "Title (ad and consent page)"), ("intro", "Introduction (ad and consent page)"),
                      ("instructions", "Instructions (before the videos)")):
        out += [f"## {what}", "", str(part.get(key, "")) or "(none)", ""]
    out += ["## Questions", ""]
    for q in plan.get("questions", []):
        out.append(f"- `{q.get('id')}` ({q.get('type')}): {q.get('prompt', '')}")
        for o in q.get("options", []):
            out.append(f"  - `{o.get('value')}`: {o.get('label', o.get('value'))}")
    return "\n".join(out) + "\n"
