from optim.cli import main

raise SystemExit(main())
