from concurrent_mlflow.cli import main

main()
