package service

import (
	"context"
	"strings"
	"testing"
)

func TestAppValidateCommands(t *testing.T) {
	run := func(context.Context, []string, CommandEnv) int { return 0 }
	tests := []struct {
		name     string
		commands []Command
		wantErr  string // "" for none
	}{
		{name: "none"},
		{name: "two", commands: []Command{{Name: "courier", Run: run}, {Name: "recipe-2", Run: run}}},
		{name: "bad name", commands: []Command{{Name: "Courier", Run: run}}, wantErr: `command name "Courier"`},
		{name: "empty name", commands: []Command{{Run: run}}, wantErr: `command name ""`},
		{name: "no run", commands: []Command{{Name: "courier"}}, wantErr: "command courier has no Run"},
		{name: "twice", commands: []Command{{Name: "courier", Run: run}, {Name: "courier", Run: run}}, wantErr: "command courier defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &App{Name: "demo", Version: "1", Registry: NewRegistry(), Commands: tt.commands}
			switch err := a.Validate(); {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
