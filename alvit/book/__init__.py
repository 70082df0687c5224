"""The book side: reads run folders only, never trains and never imports torch.

- :mod:`alvit.book.summary`: the tidy tables of final rounds, per setting;
- :mod:`alvit.book.stats`, :mod:`alvit.book.claims`: the verdict rule and the paper's claims;
- :mod:`alvit.book.power`: how often those verdicts are right, by simulation;
- :mod:`alvit.book.plots`, :mod:`alvit.book.notebook`: what the notebooks draw and call;
- :mod:`alvit.book.pages`: a run's page, the experiment notebook executed with papermill;
- :mod:`alvit.book.performance`: the "Performance and cost" page's tables, and
  :mod:`alvit.book.speed`: its GPU speed check of issue 28, before and after;
- :mod:`alvit.book.build`: ``alvit book``, the Jupyter Book build.

It imports the core (:mod:`alvit`) and never the sweep (:mod:`alvit.sweep`), which imports it.
"""
