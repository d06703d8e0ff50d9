"""Experiments: a spec (:mod:`harness.spec`) names datasets, strategies and seeds; every
dataset × strategy × seed cell (:mod:`harness.cells`) runs its strategy's own search and then
the one shared protocol (:mod:`harness.protocol`), on Ray Tune (:mod:`harness.runner`) or in
this process (:mod:`harness.local`); rows (:mod:`harness.row`) land in the run directory
(:mod:`harness.rundir`), and the report (:mod:`harness.report`) compares them. The harness
knows no strategy by name: it asks each strategy what it can do."""
