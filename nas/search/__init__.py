"""The search: config, the loop (`loop.Search`), one trial (`trial_runner`), the record of finished
trials (`recorder`, `journal`, `results`, `plots`), the reward and the controller's saved state.

Nothing is imported here, so `nas.search.<module>` imports only what it needs.
"""
