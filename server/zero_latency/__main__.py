from zero_latency.cli import main

raise SystemExit(main())
