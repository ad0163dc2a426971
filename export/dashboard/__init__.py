"""The fleet dashboard (`trey-export dashboard`): a read-only web app over the lake.

  demo_lake.py  seeded generator of a populated lake in docs/lake.md's layout (--demo, tests, bench)
  queries.py    DuckDB: the snapshot built from the Parquet tables and every view's SQL
  server.py     stdlib threaded HTTP server: routes, parameter validation, JSON/CSV, auth
  static/       the page (index.html, app.js, app.css) and Apache ECharts 6.1.0, the "common"
                build from the npm package `echarts` (dist/echarts.common.min.js), vendored with
                its LICENSE (ECHARTS-LICENSE) and NOTICE: nothing is fetched at run time.
"""
