"""The prompt hook ``buildpolicy hook bash|zsh|fish`` prints (the direnv ``hook`` /
mise ``activate`` convention): shell code that runs ``buildpolicy env --hook`` before
every prompt and applies what it prints.

One process per prompt, ``buildpolicy env`` itself: the hook is a shell function,
and the restoring is ``env``'s own work (``BUILDPOLICY_ENV_STATE`` tells it what a
previous run changed; outside a project, with the default ``hook_scope = project``,
it prints only the restoring). The hook keeps the status of the command before
the prompt (``$?``) and ignores Ctrl-C while ``env`` runs, so an interrupted run
never applies half an environment.
"""

from __future__ import annotations

import shlex

HOOK_SHELLS = ("bash", "zsh", "fish")

_BASH = """\
_buildpolicy_hook() {{
  local previous_exit_status=$?
  trap -- '' SIGINT
  eval "$({command} env --shell bash --hook)"
  trap - SIGINT
  return $previous_exit_status
}}
if [[ ";${{PROMPT_COMMAND[*]:-}};" != *";_buildpolicy_hook;"* ]]; then
  if [[ "$(declare -p PROMPT_COMMAND 2>&1)" == "declare -a"* ]]; then
    PROMPT_COMMAND=(_buildpolicy_hook "${{PROMPT_COMMAND[@]}}")
  else
    PROMPT_COMMAND="_buildpolicy_hook${{PROMPT_COMMAND:+;$PROMPT_COMMAND}}"
  fi
fi
"""

_ZSH = """\
_buildpolicy_hook() {{
  trap -- '' INT
  eval "$({command} env --shell zsh --hook)"
  trap - INT
}}
typeset -ag precmd_functions
if (( ! ${{precmd_functions[(I)_buildpolicy_hook]}} )); then
  precmd_functions=(_buildpolicy_hook $precmd_functions)
fi
"""

# fish keeps $status across event handlers itself.
_FISH = """\
function __buildpolicy_hook --on-event fish_prompt
    {command} env --shell fish --hook | source
end
"""


def hook_script(shell: str, command: list[str]) -> str:
    """The hook for ``shell`` (one of :data:`HOOK_SHELLS`), calling buildpolicy as ``command``."""
    if shell == "fish":
        from buildpolicy.output.render import fish_quote

        return _FISH.format(command=" ".join(fish_quote(word) for word in command))
    template = _BASH if shell == "bash" else _ZSH
    return template.format(command=" ".join(shlex.quote(word) for word in command))
