"""Step 6 of the DAG, the report (`build`): every run, as the report reads it (`runs`, its data
model), aggregated (`aggregate`, with bootstrap CIs and paired tests from `stats`) into tables (`tables`, LaTeX by `latex`), figures (`plots`), the
optimism study's table (`optimism`), a model card per (dataset, model) (`model_card`) and HTML
pages of them (`html`). Every writer reads the aggregate; only `build` calls the writers."""
