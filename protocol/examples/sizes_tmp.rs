use replay_protocol::*;
fn main() {
    println!("Event<&str> {}", std::mem::size_of::<Event<&str>>());
    println!("EventData<&str> {}", std::mem::size_of::<EventData<&str>>());
    println!("Node<&str> {}", std::mem::size_of::<Node<&str>>());
    println!("PageMeta {}", std::mem::size_of::<PageMeta<&str>>());
    println!("Mutation {}", std::mem::size_of::<Mutation<&str>>());
    println!("Snapshot {}", std::mem::size_of::<Snapshot<&str>>());
    println!("Environment {}", std::mem::size_of::<Environment<&str>>());
    println!("ErrorEvent {}", std::mem::size_of::<ErrorEvent<&str>>());
    println!("Network {}", std::mem::size_of::<Network<&str>>());
    println!("Freeze {}", std::mem::size_of::<Freeze<&str>>());
    println!("LongFrame {}", std::mem::size_of::<LongFrame<&str>>());
}
