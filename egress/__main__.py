from egress.cli import main

raise SystemExit(main())
