"""The sweep side: a profile's grid planned, claimed and run, on this machine or through SLURM.

- :mod:`alvit.sweep.run`: ``alvit sweep`` and its planning;
- :mod:`alvit.sweep.estimate`: the GPU-hour estimate, from measured throughput where there is one;
- :mod:`alvit.sweep.task`, :mod:`alvit.sweep.leases`: one configuration, claimed so it runs once;
- :mod:`alvit.sweep.workers`, :mod:`alvit.sweep.slurm`: the local and SLURM executors;
- :mod:`alvit.sweep.status`, :mod:`alvit.sweep.fetch`: what a sweep has done, what it needs;
- :mod:`alvit.sweep.simulate`: run folders from an effect model, to preview a book.

It imports the core (:mod:`alvit`) and the book (:mod:`alvit.book`, for run pages), never the
command line.
"""
