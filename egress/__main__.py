from egress.cli.main import main

raise SystemExit(main())
