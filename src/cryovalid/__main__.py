from cryovalid.cli import main

raise SystemExit(main())
