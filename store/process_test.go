package store

const childEnv = "BALCONY_STORE_TEST_CHILD"

func runChild(role string) int { return 2 }
