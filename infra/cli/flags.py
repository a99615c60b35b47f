"""Options that get no short flag, so one letter never means two different options across tasks.

invoke gives every option the first free letter of its name: in `nat.rotate`, whose `-t` is `--timeout` and
`-a` `--abort`, `--take-over` would get `-k`, the letter every cluster task uses for `--kubeconfig`; in
`nodes.migrate` `--ami-type` would get `-m`, `secrets.set --multiline`'s; in `cluster.versions` `--refresh` would
get `-r`, `cluster.upgrade --resume`'s. A task whose option would take a letter
that means something else elsewhere names it here (`klass=long_only(...)`); tests/cli/test_short_flags.py keeps
the rule.
"""
from __future__ import annotations


def long_only(*names: str):
    """A Task class whose `names` (Python parameter names) are given only as long options."""
    from invoke import Task

    class LongOnlyTask(Task):
        def arg_opts(self, name, default, taken_names):
            opts = super().arg_opts(name, default, taken_names)
            if name in names:
                opts["names"] = opts["names"][:1]
            return opts

    return LongOnlyTask
