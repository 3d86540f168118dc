from duluan.cli import main

main()
