"""R2AC, the real-time recurrent actor-critic: the application built on the math core.

Reading order: layers, conv, stems, heads (network blocks) -> vtrace, loss (the objective) ->
core (the learner registry: how the eLSTM gets its gradient) -> network (stem -> core -> heads)
-> optim, tree, checkpoint -> config (with config.json), runs, loop (the training application:
collect_rollout, learner_step, then the plumbing) -> train (the command line) -> evaluate, plot,
confirm (experiments) -> copy_online (the supervised copy task, fully online).

Depends on `rtrl_ref`'s math modules and on `envs`; nothing in the math core imports it.
"""
