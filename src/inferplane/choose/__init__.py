"""``inferplane choose``: which runtime, with which settings, for this model, machine and traffic.

Modules, in the order the command uses them: ``model_info`` (GGUF / HF readers),
``hardware`` (the machine as data), ``compat`` (pure: viable or the concrete reason),
``plan`` (candidates and expected duration), ``measure`` (launch each through
``inferplane serve --config`` and bench it), ``results`` (one candidate's outcome),
``rank`` (pure: goodput per replica or per dollar under SLOs), ``emit`` (the deployment
file), ``report`` (terminal tables, JSON, HTML) and ``cli``. See docs/choose.md.
"""
