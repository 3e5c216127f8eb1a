/*
 * tests/objstate.h - an object's state byte (mm/mtypes.h: OBJ_CLIENT, a
 * magazine id, OBJ_FREE, ...), for the tests that check where an object
 * is.  Include after cmocka.h and mtypes.h.
 */
#ifndef TESTS_OBJSTATE_H
#define TESTS_OBJSTATE_H

static inline unsigned state_of(const void *p)
{
	struct mspan *s = span_of_ptr(p);
	assert_non_null(s);
	return atomic_load(&s->objstate[span_obj_index(s, (uintptr_t)p - s->base)]);
}

#endif
