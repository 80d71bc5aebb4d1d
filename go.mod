module cir

go 1.26.8
