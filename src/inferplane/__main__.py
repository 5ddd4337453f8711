from inferplane.cli import main

raise SystemExit(main())
