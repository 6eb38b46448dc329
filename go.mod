module github.com/duet-bft/duet

go 1.26
