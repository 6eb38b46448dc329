package main

// The applications this binary carries: each registers itself
// (service.RegisterApp) when imported. Adding an application is one line
// here.
import (
	_ "github.com/duet-bft/duet/apps/assets"
	_ "github.com/duet-bft/duet/apps/supplychain"
)

// defaultApp is what duet up and duet bench run without --app.
const defaultApp = "supplychain"
