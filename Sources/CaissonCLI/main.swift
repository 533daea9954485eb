print("caisson")
