"""The Solver's collaborators, one job each (:class:`xpnet.solver.Solver` ties them).

``batches``      the data set placed on the device (or kept on the host) once,
                 minibatch indices and the gather of their rows
``updates``      how the update rule is applied: one strategy, chosen once from
                 the rule and the backend (course-style, in place, flat, capturable)
``rate``         the one place the learning rate is computed (per-epoch decay or
                 a per-iteration schedule)
``losses``       the losses kept on the device and fetched in bulk
``evaluation``   accuracy, with test-time flips
``checkpoints``  the Solver's state, saved and loaded
``interrupt``    Ctrl-C turned into a flag checked between steps
``parallel``     data-parallel steps over a communicator's ranks: each rank's slice
                 of the global batch, one all-reduce of the flat gradients
"""
