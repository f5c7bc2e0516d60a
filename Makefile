# PGXS build: make, make install, make installcheck.
EXTENSION = replica_router
MODULE_big = replica_router
SRCS = $(wildcard src/*.cpp)
OBJS = $(SRCS:.cpp=.o)
DATA = $(wildcard extension/replica_router--*.sql)

PG_CONFIG ?= pg_config

# Regression tests run against a temporary instance with the library preloaded.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-config=$(CURDIR)/test/regress.conf --temp-instance=$(CURDIR)/tmp_check_regress --load-extension=replica_router

PG_CXXFLAGS = -std=c++20 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register $(if $(WERROR),-Werror) $(EXTRA_CXXFLAGS)
PG_CPPFLAGS = -I$(libpq_srcdir) -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK = -lpq -lstdc++ $(EXTRA_LDFLAGS)

# No LLVM bitcode for C++ sources: JIT inlining is for the core's C code.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: test tap
test:
	./scripts/test.sh
