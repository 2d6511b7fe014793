"""``mtfsl-train --help`` without Hydra's help machinery.

Hydra's help lists the config groups by building a config repository per group (each a deep
copy of every stored schema): 15 s of CPU for mtfsl's groups. This help lists the same
groups by reading the config folders (the shipped ``mtfsl.configs`` and ``$MTFSL_CONFIG_DIR``,
as the search-path plugin orders them) and the registered task kinds and readers, and says
how to print the composed config. ``--hydra-help`` is Hydra's own.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

from mtfsl.config_dirs import user_config_dirs

SKIP = {"hydra", "schema"}  # Hydra's own groups; the schemas task YAMLs extend


def config_groups() -> dict[str, list[str]]:
    """Group -> sorted options, from the shipped configs and ``$MTFSL_CONFIG_DIR``."""
    roots = [Path(str(files("mtfsl.configs")))]
    roots += user_config_dirs()
    groups: dict[str, set[str]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP):
            options = {f.stem for f in folder.glob("*.yaml")}
            if options:
                groups.setdefault(folder.name, set()).update(options)
    return {name: sorted(options) for name, options in sorted(groups.items())}


def help_text() -> str:
    from mtfsl.data.readers import READERS
    from mtfsl.kinds import KINDS

    spec = OmegaConf.load(str(files("mtfsl.configs") / "hydra" / "help" / "mtfsl.yaml"))
    lines = [spec.header.rstrip(), "", "== Config groups (pick one with GROUP=OPTION) =="]
    lines += [f"{group}: {', '.join(options)}" for group, options in config_groups().items()]
    lines += [
        "",
        f"Task kinds: {', '.join(sorted(KINDS))}; readers: {', '.join(sorted(READERS))}",
        "",
        "== Config ==",
        "mtfsl-train --cfg job [OVERRIDES]   prints the composed config; override any key",
        "                                    with KEY=VALUE (the README's Configuration table)",
        "",
        spec.footer.rstrip().replace("$$", "$"),
        "Hydra's own options: mtfsl-train --hydra-help",
    ]
    return "\n".join(lines) + "\n"
