# Validation of the config and the helpers every rule uses.
import os
import re
import shlex

from snakemake.utils import validate

import pdarts.config
import pdarts.settings

# pdarts's check first: one line naming the first bad key (schema, then the rules a schema cannot
# say: stage chain, ops growth); Snakemake's own validate() against the same schema after it.
pdarts.settings.check_params(config)
validate(config, str(pdarts.config.SCHEMA_PATH))

FIRST_STAGE_AFTER = pdarts.settings.FIRST_STAGE_AFTER  # the `after` of the first stage: the space
STAGES = {stage["name"]: stage for stage in config["search"]["stages"]}
LAST_STAGE = config["search"]["stages"][-1]["name"]
# The settings files as Snakemake merged them (params.yaml, then each --configfile over it): the
# steps that read settings files themselves (report, sweep-plan) merge them the same way.
SETTINGS_FILES = ["params.yaml", *(os.path.relpath(f) for f in workflow.overwrite_configfiles)]


wildcard_constraints:
    stage="|".join(re.escape(name) for name in STAGES),


def flags(section):
    """A settings section as command-line flags, exactly as DVC's ${section} expands it
    (with `parsing.bool: boolean_optional` in .dvc/config). An empty list gives no flag at all, as
    with DVC; the commands read a list option that is absent as an empty list."""
    words = []
    for key, value in section.items():
        if isinstance(value, bool):
            words.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, list):
            if value:
                words += [f"--{key}"] + [shlex.quote(str(item)) for item in value]
        else:
            words += [f"--{key}", shlex.quote(str(value))]
    return " ".join(words)


def stage_setting(key):
    """A per-stage setting of search.stages, looked up by the {stage} wildcard."""
    return lambda wildcards: STAGES[wildcards.stage][key]


def alphas_of(stage):
    """The alphas a stage's search writes (for `space`: the initial search space's)."""
    if stage == FIRST_STAGE_AFTER:
        return rules.prepare_space.output[0]
    return expand(rules.search.output.alphas, stage=stage)[0]
